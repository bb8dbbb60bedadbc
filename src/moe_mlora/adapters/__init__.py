"""MLoRA and MoE-MLoRA for any backbone's tower: config, layer, merge and files kept apart (as PEFT's LoRA)."""

from moe_mlora.adapters.config import (
    ADAPTER_KINDS, DEFAULT_LORA_REDUCE, AdapterConfig, AdapterMode, GateInit, GateInput, GateWeights,
)
from moe_mlora.adapters.io import ADAPTER_CONFIG, ADAPTER_WEIGHTS, load_adapters, save_adapters
from moe_mlora.adapters.layer import (
    DomainGate, LowRankExperts, TowerAdapter, adapters_of, attach_adapters, set_adapter_mode, towers_of,
)
from moe_mlora.adapters.merge import MergedTower, merge_adapters, merge_domain, merged_adapters, unmerge_adapters
from moe_mlora.layers.domain_part import backbone_parameters

__all__ = [
    "ADAPTER_CONFIG", "ADAPTER_KINDS", "ADAPTER_WEIGHTS", "DEFAULT_LORA_REDUCE", "AdapterConfig", "AdapterMode",
    "DomainGate", "GateInit", "GateInput", "GateWeights", "LowRankExperts", "MergedTower", "TowerAdapter", "adapters_of", "attach_adapters",
    "backbone_parameters", "load_adapters", "merge_adapters", "merge_domain", "merged_adapters", "save_adapters",
    "set_adapter_mode", "towers_of", "unmerge_adapters",
]
