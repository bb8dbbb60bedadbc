"""Name -> multi-domain method. A new method is one file defining a `Method` and one line here; the CLI,
grids, records and report ask this registry. The first three are the paper's arms, in its order."""

from __future__ import annotations

from moe_mlora.errors import ConfigError
from moe_mlora.methods import adasparse, apg, hamur, lora, m2m, mmoe, pepnet, ple, separate, shared_bottom, star
from moe_mlora.methods.method import Method

METHODS: dict[str, Method] = {method.name: method for method in (
    lora.BASE, lora.MLORA, lora.MOE_MLORA,
    shared_bottom.METHOD,
    mmoe.METHOD,
    ple.METHOD,
    star.METHOD,
    pepnet.EPNET,
    pepnet.PPNET,
    pepnet.PEPNET,
    adasparse.METHOD,
    separate.METHOD,
    apg.METHOD,
    hamur.METHOD,
    m2m.METHOD,
)}
PAPER_METHODS = ("base", "mlora", "moe-mlora")  # the paper's Table 1 arms


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"unknown approach '{name}'; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def method_title(approach: str) -> str:
    """A registered method's title (the registry is asked at call time, so plugins registered later count)."""
    return METHODS[approach].title if approach in METHODS else approach


def arm_title(arm: str) -> str:
    """An arm's name in tables: the method's title, and a MoE-MLoRA variant's settings in brackets."""
    approach, _, variant = arm.partition("[")
    return f"{method_title(approach)} [{variant.rstrip(']')}]" if variant else method_title(approach)
