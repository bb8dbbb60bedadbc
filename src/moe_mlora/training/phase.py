"""A phase as data: what trains, on which rows in which order, through which forward path, what it
selects on and at which granularity, with which optimizer. One loop (moe_mlora.training.loop) runs any
phase; an approach is a list of phases (moe_mlora.training.approaches)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from torch import nn

from moe_mlora.adapters import AdapterMode, adapters_of, backbone_parameters
from moe_mlora.errors import ConfigError
from moe_mlora.layers.domain_part import added_domain_rows, method_parameters


class PhaseName(str, Enum):
    BASE = "base"
    MLORA = "mlora"
    JOINT = "joint"  # a single-phase multi-domain method (STAR, PEPNet, MMoE, ...): everything, jointly
    BACKBONE = "phase1-backbone"
    EXPERTS = "phase2-experts"
    GATE = "phase3-gate"
    # The authors' TensorFlow code, as it actually runs (see moe_mlora.training.approaches).
    AUTHORS_ALL = "authors-phase1-all-domains"
    AUTHORS_DOMAINS = "authors-phase2-domain-passes"
    AUTHORS_GATE = "authors-phase3-all-domains"
    ADDED_DOMAIN = "added-domain"  # a domain added to a trained run (moe_mlora.serving.add_domain)
    PARTS = "parts"  # a method's own parts alone, on a trained backbone (a plugin's second phase, say)


class Trains(str, Enum):
    """Which parameters a phase trains; every other one is frozen (requires_grad off, not in the optimizer)."""

    ALL = "all"
    BACKBONE = "backbone"  # everything but the adapters
    EXPERTS = "experts"  # the low-rank experts of every tower
    GATE = "gate"  # the domain gate
    ALL_BUT_GATE_EMBEDDING = "all-but-gate-embedding"  # the authors' code: its gate embedding is a fixed random vector
    # A domain added to a trained run (moe_mlora.serving.add_domain): the tensors that hold its rows (field
    # embeddings, experts, gate). A gradient mask set there keeps every other row at zero gradient, and the
    # phase has no weight decay, so Adam leaves those rows bitwise as they were.
    ADDED_DOMAIN = "added-domain"
    PARTS = "parts"  # every parameter of the method's parts (moe_mlora.layers.domain_part), the backbone frozen


class Rows(str, Enum):
    ALL = "all"  # every training row once per epoch, in the run's batch order, routed by domain
    OWN_DOMAIN = "own-domain"  # an expert view: each expert sees its domain's rows, in per-expert batches
    EACH_EXPERTS_DOMAIN = "each-experts-domain"  # one pass per expert over its domain's rows (the authors' phase 2)


class Granularity(str, Enum):
    """What early stopping and selection act on."""

    MODEL = "model"  # one validation score for the whole model
    EXPERT = "expert"  # one per expert, its AUC on its domain's validation rows; each stops on its own


class Optimizer(str, Enum):
    ADAM = "adam"  # torch's (fused) Adam over whole tensors
    ADAM_PER_EXPERT = "adam-per-expert"  # Adam per slice of stacked expert tensors, one step count each


@dataclass(frozen=True)
class Phase:
    name: PhaseName
    trains: Trains
    mode: AdapterMode | None  # the adapters' forward path; None: no adapter attached
    seed_key: str  # phases with the same key draw the same random streams (Base and phase 1 do)
    rows: Rows = Rows.ALL
    granularity: Granularity = Granularity.MODEL
    optimizer: Optimizer = Optimizer.ADAM
    start_counts: bool = False  # the state before training is epoch 0 of selection (never worse than the start)
    revert_each_epoch: bool = False  # a non-improving epoch is undone at once (the authors' code reloads the best)
    weight_decay: bool = True  # the model's L2 groups (moe_mlora.training.optim.ModelAdam)

    def __post_init__(self) -> None:
        per_expert = (self.rows is Rows.OWN_DOMAIN, self.granularity is Granularity.EXPERT,
                      self.optimizer is Optimizer.ADAM_PER_EXPERT)
        if len(set(per_expert)) != 1:
            raise ConfigError(f"phase {self.name.value}: own-domain rows, per-expert selection and the per-expert "
                              "optimizer go together")

    @property
    def per_expert(self) -> bool:
        return self.granularity is Granularity.EXPERT


def phase_parameters(model: nn.Module, trains: Trains) -> list[nn.Parameter]:
    if trains is Trains.ALL:
        return list(model.parameters())
    if trains is Trains.BACKBONE:
        return backbone_parameters(model)
    if trains is Trains.PARTS:
        owned = method_parameters(model)
        if not owned:
            raise ConfigError("a phase that trains the method's parts needs a method with parts attached")
        return owned
    if trains is Trains.ADDED_DOMAIN:
        return [*model.field_tables(), *(p for adapter in adapters_of(model) for p in adapter.parameters()),
                *(p for p, _ in added_domain_rows(model))]
    adapters = adapters_of(model)
    if not adapters:
        raise ConfigError(f"a phase that trains the {trains.value} needs adapters attached")
    if trains is Trains.EXPERTS:
        return [p for adapter in adapters for p in adapter.expert_parameters()]
    if trains is Trains.GATE:
        return [p for adapter in adapters for p in adapter.gate_parameters()]
    fixed = {id(adapter.gate.domain_embedding.weight) for adapter in adapters if adapter.gate is not None}
    return [p for p in model.parameters() if id(p) not in fixed]


def set_trainable(model: nn.Module, trainable: list[nn.Parameter]) -> None:
    """Real freezing: only `trainable` keeps requires_grad."""
    keep = {id(p) for p in trainable}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in keep)
