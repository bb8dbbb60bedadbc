"""Approaches as schedules of phases (see moe_mlora.training.phase), run by the one loop.

* base:      one phase, the whole backbone.
* mlora:     one phase, backbone and per-domain adapters jointly, each row through its domain's adapter.
* moe-mlora: (1) the backbone alone, adapters excluded; (2) the experts, backbone frozen, each expert
             trained only on its domain's rows with the other experts excluded, early-stopped per expert;
             (3) the gate alone, everything else frozen, on all domains.

Every phase of every approach uses the run's batch order and selection metric (TrainConfig).

The MoE-MLoRA authors' TensorFlow code does not actually carry these phases out (its phase switches are
Python flags read once at graph build, its freezing sets attributes Keras ignores, its gate embedding is
re-created untracked). Here freezing is real: requires_grad is cleared and the optimizer only holds the
phase's parameters; the tests check that frozen weights stay bitwise unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from enum import Enum

import torch

from moe_mlora.adapters import (
    DEFAULT_LORA_REDUCE, AdapterConfig, AdapterMode, attach_adapters, set_adapter_mode,
)
from moe_mlora.data.prepare import TensorPart
from moe_mlora.errors import ConfigError, DataError
from moe_mlora.models import CTRModel
from moe_mlora.training.config import TrainConfig, derive_seed
from moe_mlora.training.evaluation import evaluate
from moe_mlora.training.loop import EpochCallback, PhaseResult, fit, fit_one_group_at_a_time
from moe_mlora.training.metrics import Evaluation
from moe_mlora.training.phase import Granularity, Optimizer, Phase, PhaseName, Rows, Trains, set_trainable

APPROACHES = ("base", "mlora", "moe-mlora")


class Phase2Schedule(str, Enum):
    PARALLEL = "parallel"  # every expert in one vectorised pass, each as if alone
    SEQUENTIAL = "sequential"  # the literal schedule: one expert after another


BASE_PHASE = Phase(PhaseName.BASE, Trains.ALL, None, seed_key="backbone")
MLORA_PHASE = Phase(PhaseName.MLORA, Trains.ALL, AdapterMode.DOMAIN, seed_key="mlora")
MOE_BACKBONE = Phase(PhaseName.BACKBONE, Trains.BACKBONE, AdapterMode.BACKBONE, seed_key="backbone")  # = Base, bitwise
MOE_EXPERTS = Phase(PhaseName.EXPERTS, Trains.EXPERTS, AdapterMode.EXPERT, seed_key="experts", rows=Rows.OWN_DOMAIN,
                    granularity=Granularity.EXPERT, optimizer=Optimizer.ADAM_PER_EXPERT, start_counts=True)
MOE_GATE = Phase(PhaseName.GATE, Trains.GATE, AdapterMode.MIXTURE, seed_key="gate", start_counts=True)
SCHEDULES: dict[str, tuple[Phase, ...]] = {
    "base": (BASE_PHASE,),
    "mlora": (MLORA_PHASE,),
    "moe-mlora": (MOE_BACKBONE, MOE_EXPERTS, MOE_GATE),
}
FINAL_MODE = {"mlora": AdapterMode.DOMAIN, "moe-mlora": AdapterMode.MIXTURE}


@dataclass(frozen=True)
class ApproachConfig:
    approach: str = "base"
    experts_per_domain: int = 1
    lora_reduce: int | None = None  # None: the backbone's default from the MLoRA configs
    rank: int | None = None
    phase2_schedule: str = Phase2Schedule.PARALLEL.value

    def __post_init__(self) -> None:
        if self.approach not in APPROACHES:
            raise ConfigError(f"unknown approach '{self.approach}'; choose one of {', '.join(APPROACHES)}")
        try:
            Phase2Schedule(self.phase2_schedule)
        except ValueError:
            raise ConfigError(f"phase 2 schedule must be one of {', '.join(s.value for s in Phase2Schedule)}") from None
        if self.approach != "moe-mlora" and self.experts_per_domain != 1:
            raise ConfigError("--experts-per-domain applies to moe-mlora only")
        if self.experts_per_domain < 1:
            raise ConfigError(f"experts per domain must be at least 1, got {self.experts_per_domain}")
        if self.rank is not None and self.rank < 1:
            raise ConfigError(f"adapter rank must be at least 1, got {self.rank}")
        if self.lora_reduce is not None and self.lora_reduce < 1:
            raise ConfigError(f"lora-reduce must be at least 1, got {self.lora_reduce}")

    @property
    def schedule(self) -> tuple[Phase, ...]:
        return SCHEDULES[self.approach]

    def adapter_config(self, model_name: str, n_domains: int, run_seed: int) -> AdapterConfig:
        reduce = self.lora_reduce or DEFAULT_LORA_REDUCE.get(model_name, 16)
        return AdapterConfig(self.approach, n_domains, self.experts_per_domain, reduce, self.rank,
                             init_seed=derive_seed(run_seed, "adapters"))


@dataclass
class TrainingReport:
    approach: str
    phases: list[PhaseResult] = field(default_factory=list)
    valid: Evaluation | None = None
    test: Evaluation | None = None
    seconds: float = 0.0


def expert_view(part: TensorPart, config: AdapterConfig) -> TensorPart:
    """Each row once per expert of its domain, with `experts` set: what phase 2 trains and selects on."""
    k = config.experts_per_domain
    replica = torch.arange(k).repeat_interleave(len(part))
    domains = part.domains.repeat(k)
    return TensorPart(part.codes.repeat(k, 1), domains, part.labels.repeat(k),
                      experts=config.experts_of_domain(domains, replica))


def load_backbone_state(model: CTRModel, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a trained backbone strictly: every backbone tensor, nothing else."""
    expected = {key for key in model.state_dict() if ".adapter." not in f".{key}"}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise DataError(f"{source}: not this model's backbone (missing {missing}, unexpected {unexpected})")
    model.load_state_dict({**model.state_dict(), **state}, strict=True)


def train_approach(
    model: CTRModel,
    train: TensorPart,
    valid: TensorPart,
    domain_names: tuple[str, ...],
    approach: ApproachConfig,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
    trained_backbone: tuple[dict, PhaseResult, str] | None = None,
) -> TrainingReport:
    """Run the approach's phases on `model` (adapters are attached here); the model ends ready for inference.

    `trained_backbone` (a Base run's backbone state, its phase result and where it came from; same data,
    model, settings and seed) stands in for MoE-MLoRA's phase 1, which would reproduce it bitwise.
    """
    started = time.perf_counter()
    report = TrainingReport(approach.approach)
    adapter_config = None
    if approach.approach != "base":
        adapter_config = approach.adapter_config(model.name, len(domain_names), config.seed)
        attach_adapters(model, adapter_config)
    for phase in approach.schedule:
        if phase.name is PhaseName.BACKBONE and trained_backbone is not None:
            state, result, source = trained_backbone
            load_backbone_state(model, state, source)
            report.phases.append(replace(result, phase=phase.name.value,
                                         note=f"reused the Base run's backbone ({source}); phase 1 reproduces it bitwise"))
            continue
        if phase.rows is Rows.OWN_DOMAIN:
            rows, valid_rows = expert_view(train, adapter_config), expert_view(valid, adapter_config)
            run = fit_one_group_at_a_time if approach.phase2_schedule == Phase2Schedule.SEQUENTIAL.value else fit
            report.phases.append(run(model, phase, rows, valid_rows, domain_names, config, on_epoch=on_epoch))
        else:
            report.phases.append(fit(model, phase, train, valid, domain_names, config, on_epoch=on_epoch))
    if approach.approach in FINAL_MODE:
        set_adapter_mode(model, FINAL_MODE[approach.approach])
    set_trainable(model, list(model.parameters()))
    report.valid = evaluate(model, valid, domain_names, config.eval_batch_size)
    report.seconds = time.perf_counter() - started
    return report
