"""The paper's arms: Base (the bare backbone), MLoRA (Yang et al., 2024) and MoE-MLoRA, whose parts are the
LoRA adapters of moe_mlora.adapters. Their phases and their settings (with the checks of their values) are here;
what each phase does between them (the gate's start, the expert views) is in moe_mlora.training.approaches.

Their settings predate methods' own settings: they are stored as fields of the run's approach section and every
run's key hashes them (the founding settings of moe_mlora.run_config), so they stay there, as `flat_settings`: the
dataclasses below say which fields belong to which method and check their values."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from moe_mlora.adapters import AdapterMode, GateInit, GateInput, attach_adapters
from moe_mlora.errors import ConfigError
from moe_mlora.methods.method import Method
from moe_mlora.training.phase import (
    Granularity,
    Optimizer,
    Phase,
    PhaseName,
    Rows,
    Trains,
)

class Phase2Schedule(str, Enum):
    PARALLEL = "parallel"  # every expert in one vectorised pass, each as if alone
    SEQUENTIAL = "sequential"  # the literal schedule: one expert after another


class Selection(str, Enum):
    """What phases 2 and 3 of MoE-MLoRA (paper schedule) may return."""

    GREEDY = "greedy"  # the untrained start is scored as epoch 0 and must be strictly beaten (can return the start)
    TRAINED = "trained"  # the best trained epoch, as Keras' restore_best_weights: at least one epoch, never the start


class Schedule(str, Enum):
    PAPER = "paper"  # the method as the paper describes it
    AUTHORS_CODE = "authors-code"  # what the authors' TensorFlow code does


@dataclass(frozen=True)
class LoRASettings:
    """MLoRA's settings (and MoE-MLoRA's first two): the adapters' rank."""

    lora_reduce: int | None = None
    rank: int | None = None

    def __post_init__(self) -> None:
        if self.rank is not None and self.rank < 1:
            raise ConfigError(f"adapter rank must be at least 1, got {self.rank}")
        if self.lora_reduce is not None and self.lora_reduce < 1:
            raise ConfigError(f"lora-reduce must be at least 1, got {self.lora_reduce}")


@dataclass(frozen=True)
class MoEMLoRASettings(LoRASettings):
    """MoE-MLoRA's settings: k, its schedule, its gate and what its phases keep."""

    experts_per_domain: int = 1
    phase2_schedule: str = Phase2Schedule.PARALLEL.value
    schedule: str = Schedule.PAPER.value
    gate_init: str = GateInit.UNIFORM.value
    gate_input: str = GateInput.DOMAIN.value
    gate_learning_rate: float | None = None
    selection: str = Selection.GREEDY.value

    def __post_init__(self) -> None:
        for name, kind in (("phase2_schedule", Phase2Schedule), ("schedule", Schedule), ("gate_init", GateInit),
                           ("gate_input", GateInput), ("selection", Selection)):
            try:
                kind(getattr(self, name))
            except ValueError:
                raise ConfigError(f"{name.replace('_', ' ')} must be one of {', '.join(k.value for k in kind)}, "
                                  f"got '{getattr(self, name)}'") from None
        if self.experts_per_domain < 1:
            raise ConfigError(f"experts per domain must be at least 1, got {self.experts_per_domain}")
        super().__post_init__()
        if self.gate_learning_rate is not None and not (math.isfinite(self.gate_learning_rate) and self.gate_learning_rate > 0):
            raise ConfigError(f"gate learning rate must be a positive number, got {self.gate_learning_rate}")
        if self.schedule == Schedule.AUTHORS_CODE.value and (self.gate_init, self.gate_learning_rate) != (
                GateInit.UNIFORM.value, None):
            raise ConfigError("the authors-code schedule has no gate phase of its own: --gate-init and "
                              "--gate-learning-rate do not apply")
        if self.schedule == Schedule.AUTHORS_CODE.value and self.selection != Selection.GREEDY.value:
            raise ConfigError("the authors-code schedule keeps its own selection (non-improving epochs undone): "
                              "--selection applies to the paper's schedule")
        if self.schedule == Schedule.AUTHORS_CODE.value and self.phase2_schedule != Phase2Schedule.PARALLEL.value:
            raise ConfigError("the authors-code schedule runs its own phase 2 (one pass per expert): "
                              "--phase2-schedule applies to the paper's schedule")


BASE_PHASE = Phase(PhaseName.BASE, Trains.ALL, None, seed_key="backbone")
MLORA_PHASE = Phase(PhaseName.MLORA, Trains.ALL, AdapterMode.DOMAIN, seed_key="mlora")
MOE_BACKBONE = Phase(PhaseName.BACKBONE, Trains.BACKBONE, AdapterMode.BACKBONE, seed_key="backbone")  # = Base, bitwise
MOE_EXPERTS = Phase(PhaseName.EXPERTS, Trains.EXPERTS, AdapterMode.EXPERT, seed_key="experts", rows=Rows.OWN_DOMAIN,
                    granularity=Granularity.EXPERT, optimizer=Optimizer.ADAM_PER_EXPERT, start_counts=True)
MOE_GATE = Phase(PhaseName.GATE, Trains.GATE, AdapterMode.MIXTURE, seed_key="gate", start_counts=True)
_AUTHORS = dict(trains=Trains.ALL_BUT_GATE_EMBEDDING, mode=AdapterMode.MIXTURE, revert_each_epoch=True)
AUTHORS_ALL = Phase(PhaseName.AUTHORS_ALL, seed_key="authors-1", **_AUTHORS)
AUTHORS_DOMAINS = Phase(PhaseName.AUTHORS_DOMAINS, seed_key="authors-2", rows=Rows.EACH_EXPERTS_DOMAIN,
                        start_counts=True, **_AUTHORS)
AUTHORS_GATE = Phase(PhaseName.AUTHORS_GATE, seed_key="authors-3", start_counts=True, **_AUTHORS)
AUTHORS_CODE_PHASES = (AUTHORS_ALL, AUTHORS_DOMAINS, AUTHORS_GATE)


def attach_lora(model, n_domains: int, run_seed: int, approach) -> None:
    attach_adapters(model, approach.adapter_config(model.name, n_domains, run_seed))


BASE = Method("base", "Base", "the backbone alone", phases=(BASE_PHASE,), backbone_path=True, grows=True, folds=True)
MLORA = Method("mlora", "MLoRA", "Yang et al., 2024", phases=(MLORA_PHASE,), attach=attach_lora,
               final_mode=AdapterMode.DOMAIN, grows=True, backbone_path=True, folds=True, flat_settings=LoRASettings)
MOE_MLORA = Method("moe-mlora", "MoE-MLoRA", "the paper (moe-mlora-paper.md)", phases=(MOE_BACKBONE, MOE_EXPERTS, MOE_GATE),
                   attach=attach_lora, final_mode=AdapterMode.MIXTURE, grows=True, backbone_path=True, folds=True,
                   flat_settings=MoEMLoRASettings)
