"""Approaches as phase schedules: which parameters train, on which rows, through which forward path.

* base:      one phase, the whole backbone, shuffled batches.
* mlora:     one phase, backbone and per-domain adapters jointly, single-domain batches with domains
             visited in shuffled order (the MLoRA authors' protocol).
* moe-mlora: (1) the backbone alone, adapters excluded; (2) the experts, backbone frozen, each expert
             trained only on its domain's rows with the other experts excluded, early-stopped per expert;
             (3) the gate alone, everything else frozen, on all domains.

The MoE-MLoRA authors' TensorFlow code does not actually carry these phases out (its phase switches are
Python flags read once at graph build, its freezing sets attributes Keras ignores, its gate embedding is
re-created untracked). Here freezing is real: requires_grad is cleared and the optimizer only holds the
phase's parameters; the tests check that frozen weights stay bitwise unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from sklearn.metrics import log_loss, roc_auc_score
from torch import nn
from tqdm import tqdm

from moe_mlora.adapters import (
    DEFAULT_LORA_REDUCE, AdapterConfig, AdapterMode, TowerAdapter, adapters_of, attach_adapters, backbone_parameters,
    set_adapter_mode,
)
from moe_mlora.data.prepare import TensorPart
from moe_mlora.errors import ConfigError
from moe_mlora.models import CTRModel
from moe_mlora.training.loop import (
    EpochRecord, FitResult, TrainConfig, TrainingDiverged, evaluate, fit, predict_logits, set_trainable,
)
from moe_mlora.training.metrics import Evaluation

APPROACHES = ("base", "mlora", "moe-mlora")
PHASE2_SCHEDULES = ("parallel", "sequential")


@dataclass(frozen=True)
class ApproachConfig:
    approach: str = "base"
    experts_per_domain: int = 1
    lora_reduce: int | None = None  # None: the backbone's default from the MLoRA configs
    rank: int | None = None
    phase2_schedule: str = "parallel"

    def __post_init__(self) -> None:
        if self.approach not in APPROACHES:
            raise ConfigError(f"unknown approach '{self.approach}'; choose one of {', '.join(APPROACHES)}")
        if self.phase2_schedule not in PHASE2_SCHEDULES:
            raise ConfigError(f"phase 2 schedule must be one of {PHASE2_SCHEDULES}")
        if self.approach != "moe-mlora" and self.experts_per_domain != 1:
            raise ConfigError("--experts-per-domain applies to moe-mlora only")

    def adapter_config(self, model_name: str, n_domains: int) -> AdapterConfig:
        reduce = self.lora_reduce or DEFAULT_LORA_REDUCE.get(model_name, 16)
        return AdapterConfig(self.approach, n_domains, self.experts_per_domain, reduce, self.rank)


@dataclass
class TrainingReport:
    approach: str
    phases: list[FitResult] = field(default_factory=list)
    valid: Evaluation | None = None
    test: Evaluation | None = None
    seconds: float = 0.0


EpochCallback = Callable[[str, EpochRecord], None]
MOE_PHASES = ("phase1-backbone", "phase2-experts", "phase3-gate")
_PHASE_MODES = dict(zip(MOE_PHASES, (AdapterMode.BACKBONE, AdapterMode.EXPERT, AdapterMode.MIXTURE)))


def phase_parameters(model: CTRModel, phase: str) -> list[nn.Parameter]:
    """The parameters a MoE-MLoRA phase trains; everything else is frozen."""
    if phase == MOE_PHASES[0]:
        return backbone_parameters(model)
    if phase == MOE_PHASES[1]:
        return [p for adapter in adapters_of(model) for p in adapter.expert_parameters()]
    if phase == MOE_PHASES[2]:
        return [p for adapter in adapters_of(model) for p in adapter.gate_parameters()]
    raise ConfigError(f"unknown phase '{phase}'; phases are {', '.join(MOE_PHASES)}")


def enter_phase(model: CTRModel, phase: str) -> list[nn.Parameter]:
    """Switch the forward path and freeze all but the phase's parameters; returns those."""
    set_adapter_mode(model, _PHASE_MODES[phase])
    trainable = phase_parameters(model, phase)
    set_trainable(model, trainable)
    return trainable


def train_approach(
    model: CTRModel,
    train: TensorPart,
    valid: TensorPart,
    domain_names: tuple[str, ...],
    approach: ApproachConfig,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
    trained_backbone: tuple[dict, FitResult] | None = None,
) -> TrainingReport:
    """Run the approach's phases on `model` (adapters are attached here); the model ends ready for inference.

    `trained_backbone` (a Base run's state dict and its fit result, same seed and settings) stands in for
    MoE-MLoRA's phase 1, which would reproduce it bitwise.
    """
    started = time.perf_counter()
    report = TrainingReport(approach.approach)

    def run_fit(phase: str, trainable: list[nn.Parameter], order: str = "shuffle") -> FitResult:
        callback = (lambda record: on_epoch(phase, record)) if on_epoch else None
        return fit(model, train, valid, domain_names, config, trainable=trainable, batch_order=order,
                   phase=phase, on_epoch=callback)

    if approach.approach == "base":
        report.phases.append(run_fit("base", list(model.parameters())))
    elif approach.approach == "mlora":
        attach_adapters(model, approach.adapter_config(model.name, len(domain_names)))
        report.phases.append(run_fit("mlora", list(model.parameters()), order="by-domain"))
    else:
        attach_adapters(model, approach.adapter_config(model.name, len(domain_names)))
        enter_phase(model, MOE_PHASES[0])
        if trained_backbone is None:
            report.phases.append(run_fit(MOE_PHASES[0], phase_parameters(model, MOE_PHASES[0])))
        else:
            state, fit_result = trained_backbone
            model.load_state_dict(state, strict=False)
            report.phases.append(replace(fit_result, phase=MOE_PHASES[0],
                                         note="reused the Base run's backbone (what phase 1 reproduces bitwise)"))
        enter_phase(model, MOE_PHASES[1])
        report.phases.append(train_experts(model, train, valid, domain_names, config,
                                           schedule=approach.phase2_schedule, on_epoch=on_epoch))
        enter_phase(model, MOE_PHASES[2])
        report.phases.append(run_fit(MOE_PHASES[2], phase_parameters(model, MOE_PHASES[2])))
    set_trainable(model, list(model.parameters()))
    report.valid = evaluate(model, valid, domain_names, config.eval_batch_size)
    report.seconds = time.perf_counter() - started
    return report


def expert_view(part: TensorPart, adapter: TowerAdapter) -> tuple[TensorPart, torch.Tensor]:
    """Each row once per expert of its domain. The returned part's `domains` are *expert ids* (what the
    tower routes by in EXPERT mode); the domain feature itself stays in `codes`. Also returns row domains."""
    n_domains, k = adapter.config.n_domains, adapter.config.experts_per_domain
    replica = torch.arange(k).repeat_interleave(len(part))
    expert_ids = part.domains.repeat(k) + n_domains * replica
    return TensorPart(part.codes.repeat(k, 1), expert_ids, part.labels.repeat(k)), part.domains.repeat(k)


def train_experts(
    model: CTRModel,
    train: TensorPart,
    valid: TensorPart,
    domain_names: tuple[str, ...],
    config: TrainConfig,
    *,
    schedule: str = "parallel",
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Phase 2. 'parallel': all experts in one pass; 'sequential': one expert after another (the literal
    schedule). Both give each expert only its domain's rows, with per-expert early stopping."""
    adapter = adapters_of(model)[0]
    n_experts = adapter.config.n_experts
    if schedule == "parallel":
        return _train_expert_group(model, train, valid, config, list(range(n_experts)), "phase2-experts", on_epoch)
    started = time.perf_counter()
    result = FitResult("phase2-experts")
    for expert in range(n_experts):
        single = _train_expert_group(model, train, valid, config, [expert], f"phase2-expert{expert}", on_epoch)
        result.history.extend(single.history)
        result.trainable_parameters = single.trainable_parameters
        result.total_parameters = single.total_parameters
    result.seconds = time.perf_counter() - started
    result.best_valid_wauc = _expert_wauc(model, valid, adapter, config)
    result.note = "sequential: one expert at a time"
    return result


def _train_expert_group(
    model: CTRModel,
    train: TensorPart,
    valid: TensorPart,
    config: TrainConfig,
    experts: list[int],
    phase: str,
    on_epoch: EpochCallback | None,
) -> FitResult:
    """Train the given experts together, each exactly as if alone: in every iteration each active expert
    gets its own next batch of up to batch_size rows of its domain (in the same order a one-expert run
    would draw), its loss is the mean over that batch, and it takes an Adam step with its own step count.
    The batches of all experts go through one forward pass (one-hot routing keeps them apart). Each
    expert stops on its own when its domain's validation AUC stops improving, keeping its best weights."""
    adapter = adapters_of(model)[0]
    n_experts = adapter.config.n_experts
    trainable = enter_phase(model, MOE_PHASES[1])
    optimizer = StackedExpertAdam(trainable, n_experts, config.learning_rate)
    train_rows, _ = expert_view(train, adapter)
    valid_rows, _ = expert_view(valid, adapter)

    active = torch.zeros(n_experts, dtype=torch.bool)
    active[experts] = True
    # The untrained expert (B = 0: exactly the backbone) is epoch 0 of early stopping, so phase 2 never
    # leaves an expert worse on its domain's validation rows than the backbone it started from.
    best_score = _per_expert_scores(model, valid_rows, experts, config)
    initial_score = dict(best_score)
    stale = {e: 0 for e in experts}
    best_slices = _expert_slices(trainable, experts)
    result = FitResult(phase, trainable_parameters=sum(p[0].numel() for p in trainable) * len(experts),
                       total_parameters=sum(p.numel() for p in model.parameters()))
    started = time.perf_counter()
    for epoch in range(1, config.max_epochs + 1):
        if not active.any():
            break
        epoch_start = time.perf_counter()
        model.train()
        total, n_rows = torch.zeros(()), 0
        with tqdm(total=int(active[train_rows.domains].sum()), unit="row", unit_scale=True,
                  desc=f"{phase} epoch {epoch}", disable=not config.progress, leave=False) as bar:
            for batch in _expert_batches(train_rows, active, config.batch_size, config.seed + epoch):
                per_row = nn.functional.binary_cross_entropy_with_logits(
                    model(batch.codes, batch.domains), batch.labels, reduction="none")
                counts = torch.bincount(batch.domains, minlength=n_experts)
                loss = (per_row / counts[batch.domains]).sum()  # sum over experts of each one's batch mean
                optimizer.zero_grad()
                loss.backward()
                optimizer.step(counts > 0)
                total += per_row.detach().sum()
                n_rows += len(batch)
                bar.update(len(batch))
        train_loss = float(total) / max(n_rows, 1)
        if not np.isfinite(train_loss):
            raise TrainingDiverged(f"{phase}: training loss became {train_loss} in epoch {epoch}")
        seconds = time.perf_counter() - epoch_start
        scores = _per_expert_scores(model, valid_rows, [e for e in experts if active[e]], config)
        for expert, score in scores.items():
            if score > best_score[expert]:
                best_score[expert], stale[expert] = score, 0
                _store_slices(best_slices, trainable, expert)
            else:
                stale[expert] += 1
                if stale[expert] >= config.patience:
                    active[expert] = False
        record = EpochRecord(epoch, train_loss, float(np.mean(list(scores.values()))), seconds,
                             n_rows / max(seconds, 1e-9))
        result.history.append(record)
        if on_epoch:
            on_epoch(phase, record)
    for expert in experts:
        _restore_slices(best_slices, trainable, expert)
    result.seconds = time.perf_counter() - started
    result.best_epoch = len(result.history)
    result.best_valid_wauc = _expert_wauc(model, valid, adapter, config, experts)
    improved = sum(best_score[e] > initial_score[e] for e in experts)
    result.note = f"{improved} of {len(experts)} experts improved on the backbone"
    return result


def _expert_batches(rows: TensorPart, active: torch.Tensor, batch_size: int, seed: int):
    """Iteration i holds the i-th batch of every active expert. Row order within an expert depends only on
    the seed, never on which other experts are active, so parallel and sequential runs draw alike."""
    noise = torch.rand(len(rows), generator=torch.Generator().manual_seed(seed))
    chosen = torch.nonzero(active[rows.domains]).squeeze(1)
    experts = rows.domains[chosen]
    grouped = chosen[torch.argsort(experts.double() * 2 + noise[chosen].double())]  # by expert, shuffled within
    sorted_experts = rows.domains[grouped]
    first = torch.searchsorted(sorted_experts, sorted_experts, right=False)
    iteration = (torch.arange(len(grouped)) - first) // batch_size
    order = grouped[torch.argsort(iteration, stable=True)]
    sizes = torch.bincount(iteration).tolist()
    start = 0
    for size in sizes:
        yield rows.select(order[start:start + size])
        start += size


class StackedExpertAdam:
    """Adam for tensors stacked along a leading expert dimension, with one step count per expert, that
    updates only the experts present in a step. torch's Adam keeps one step count per tensor, which would
    give every expert the bias correction of the busiest one's schedule. Same update rule as torch.optim.Adam."""

    def __init__(self, params: list[nn.Parameter], n_experts: int, lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.steps = torch.zeros(n_experts, dtype=torch.float64)
        self.first = [torch.zeros_like(p) for p in params]
        self.second = [torch.zeros_like(p) for p in params]

    def zero_grad(self) -> None:
        for parameter in self.params:
            parameter.grad = None

    @torch.no_grad()
    def step(self, present: torch.Tensor) -> None:
        beta1, beta2 = self.betas
        self.steps += present.double()
        correction1 = (1 - beta1 ** self.steps).clamp_min(1e-12)
        correction2 = (1 - beta2 ** self.steps).clamp_min(1e-12).sqrt()
        for parameter, first, second in zip(self.params, self.first, self.second):
            shape = (-1,) + (1,) * (parameter.dim() - 1)
            mask = present.view(shape)
            grad = parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)
            first.copy_(torch.where(mask, beta1 * first + (1 - beta1) * grad, first))
            second.copy_(torch.where(mask, beta2 * second + (1 - beta2) * grad * grad, second))
            denominator = second.sqrt() / correction2.to(parameter.dtype).view(shape) + self.eps
            update = (self.lr / correction1.to(parameter.dtype)).view(shape) * first / denominator
            parameter.sub_(torch.where(mask, update, torch.zeros_like(update)))


def _per_expert_scores(model: CTRModel, valid_rows: TensorPart, experts: list[int], config: TrainConfig) -> dict[int, float]:
    """Validation AUC of each expert on its domain (negative logloss where the domain has one class)."""
    if not experts:
        return {}
    chosen = valid_rows.select(torch.nonzero(torch.isin(valid_rows.domains, torch.tensor(experts))).squeeze(1))
    probabilities = torch.sigmoid(predict_logits(model, chosen, config.eval_batch_size)).numpy()
    labels, ids = chosen.labels.numpy(), chosen.domains.numpy()
    scores = {}
    for expert in experts:
        y, p = labels[ids == expert], probabilities[ids == expert]
        if len(y) == 0:
            scores[expert] = 0.0
        elif 0 < y.sum() < len(y):
            scores[expert] = float(roc_auc_score(y, p))
        else:
            scores[expert] = -float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]))
    return scores


def _expert_wauc(model: CTRModel, valid: TensorPart, adapter: TowerAdapter, config: TrainConfig,
                 experts: list[int] | None = None) -> float:
    """Validation WAUC with every row scored by its own expert(s): sum over experts of row share * AUC."""
    experts = list(range(adapter.config.n_experts)) if experts is None else experts
    valid_rows, _ = expert_view(valid, adapter)
    scores = _per_expert_scores(model, valid_rows, experts, config)
    counts = torch.bincount(valid_rows.domains, minlength=adapter.config.n_experts).numpy()
    valid_experts = [e for e in experts if scores[e] >= 0 and counts[e] > 0]
    total = sum(counts[e] for e in valid_experts)
    return float(sum(counts[e] * scores[e] for e in valid_experts) / total) if total else float("nan")


def _expert_slices(trainable: list[nn.Parameter], experts: list[int]) -> dict[int, list[torch.Tensor]]:
    return {e: [p.detach()[e].clone() for p in trainable] for e in experts}


def _store_slices(store: dict[int, list[torch.Tensor]], trainable: list[nn.Parameter], expert: int) -> None:
    store[expert] = [p.detach()[expert].clone() for p in trainable]


def _restore_slices(store: dict[int, list[torch.Tensor]], trainable: list[nn.Parameter], expert: int) -> None:
    with torch.no_grad():
        for parameter, saved in zip(trainable, store[expert]):
            parameter[expert].copy_(saved)
