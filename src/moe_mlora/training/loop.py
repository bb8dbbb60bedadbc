"""The one training loop: epochs of a phase, early stopping per group, the best weights restored.

A group is what selection acts on: the whole model (one group) or each expert (G groups, stacked
parameters, one slice each). Every epoch scores each active group on validation; a group that has not
improved for `patience` epochs stops training and, at the end, every group gets back its best weights.
The record keeps the score each group had at its chosen epoch and the score of the restored model,
evaluated afresh: the two agree (a test holds them to 1e-6).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from moe_mlora.adapters import adapters_of, set_adapter_mode
from moe_mlora.batches import Part
from moe_mlora.errors import MoeMloraError
from moe_mlora.training.config import TrainConfig, autocast, derive_seed
from moe_mlora.training.evaluation import evaluate, group_scores
from moe_mlora.training.metrics import combine_scores
from moe_mlora.training.optim import ModelAdam, StackedExpertAdam
from moe_mlora.training.resume import RunCheckpoint, rng_state, set_rng_state
from moe_mlora.training.distributed import data_parallel, local_slice, summed, world_size
from moe_mlora.training.phase import Optimizer, Phase, Trains, phase_parameters, set_trainable
from moe_mlora.training.samplers import epoch_batches, group_batches

log = logging.getLogger(__name__)


class TrainingDiverged(MoeMloraError):
    """The loss became NaN or infinite."""


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    valid_score: float  # the phase's selection score after this epoch (all groups, at their current weights)
    seconds: float
    rows_per_second: float


@dataclass
class PhaseResult:
    phase: str
    granularity: str
    select_by: str
    batch_order: str
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0  # the chosen epoch (per expert: the latest epoch any expert was chosen at)
    best_epochs: list[int] = field(default_factory=list)  # per group (one for the whole model)
    best_scores: list[float] = field(default_factory=list)  # per group, at its chosen epoch
    best_valid_score: float = float("nan")  # the selection score recorded at the chosen epoch(s)
    restored_valid_score: float = float("nan")  # the restored model's score, evaluated afresh
    epoch_cap: int = 0
    capped_groups: int = 0  # groups still improving when the epoch cap ended the phase
    improved_groups: int = 0  # groups whose chosen epoch is after the start
    seconds: float = 0.0
    trainable_parameters: int = 0
    total_parameters: int = 0
    note: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> "PhaseResult":
        return cls(**{**data, "history": [EpochRecord(**record) for record in data["history"]]})


EpochCallback = Callable[[str, EpochRecord], None]


class Snapshot:
    """The best state of each group: whole tensors (one group) or slices of stacked expert tensors. With one
    group it holds the model's buffers too: a running statistic (STAR's partitioned normalisation) belongs to
    the weights it was gathered with, and restoring the weights alone scored 0.75 where the best epoch had
    scored 0.89. Per-expert phases keep only their experts' slices: their buffers are shared by all groups
    (no per-expert method has buffers that training changes)."""

    def __init__(self, params: list[nn.Parameter], stacked: bool, buffers: list[torch.Tensor] = ()) -> None:
        self.params, self.stacked, self.saved = params, stacked, {}
        self.buffers = [] if stacked else list(buffers)

    def _views(self, group: int) -> list[torch.Tensor]:
        return [p.detach()[group] if self.stacked else p.detach() for p in self.params] + self.buffers

    def save(self, group: int) -> None:
        self.saved[group] = [view.clone() for view in self._views(group)]

    def state_dict(self) -> dict[int, list[torch.Tensor]]:
        return dict(self.saved)

    def load_state_dict(self, saved: dict) -> None:
        self.saved = {int(group): list(tensors) for group, tensors in saved.items()}

    @torch.no_grad()
    def restore(self, group: int) -> None:
        for view, saved in zip(self._views(group), self.saved[group]):
            view.copy_(saved)


@dataclass
class GroupStopping:
    """Early stopping per group: each group's best validation score and its epoch, its latest score, and whether
    it still trains (an active group is scored every epoch, so it has gone `epoch - best_epoch` epochs without
    improving). `observe` takes an epoch's scores and says which groups improved (their weights to be kept) and
    which were put back to their best (`revert_each_epoch`)."""

    groups: list[int]
    n_groups: int
    patience: int
    min_epochs: int
    active: torch.Tensor = field(init=False)
    best: dict[int, float] = field(init=False)
    best_epoch: dict[int, int] = field(init=False)
    current: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.active = torch.zeros(self.n_groups, dtype=torch.bool)
        self.active[self.groups] = True
        self.best = {g: -np.inf for g in self.groups}
        self.best_epoch = {g: 0 for g in self.groups}

    def training(self) -> list[int]:
        return [g for g in self.groups if self.active[g]]

    def start(self, scores: dict[int, float]) -> None:
        """The scores before the first epoch, which later epochs must beat (a phase that `start_counts`)."""
        self.current.update(scores)
        self.best.update(scores)

    def observe(self, scores: dict[int, float], epoch: int, revert: bool) -> tuple[list[int], list[int]]:
        """After `epoch`: returns (the groups that improved, the groups put back to their best scores)."""
        self.current.update(scores)
        improved, reverted = [], []
        for group, score in scores.items():
            if score > self.best[group]:
                self.best[group], self.best_epoch[group] = score, epoch
                improved.append(group)
            else:
                if epoch - self.best_epoch[group] >= self.patience and epoch >= self.min_epochs:
                    self.active[group] = False
                if revert:
                    self.current[group] = self.best[group]
                    reverted.append(group)
        return improved, reverted

    def state_dict(self) -> dict:
        return {"active": self.active.clone(), "best": dict(self.best), "best_epoch": dict(self.best_epoch),
                "current": dict(self.current)}

    def load_state_dict(self, state: dict) -> None:
        self.active = state["active"].clone()
        self.best, self.best_epoch, self.current = ({int(g): v for g, v in state[name].items()}
                                                    for name in ("best", "best_epoch", "current"))


def enter_phase(model: nn.Module, phase: Phase) -> list[nn.Parameter]:
    """Switch the forward path and freeze all but the phase's parameters; returns those."""
    if phase.mode is not None:
        set_adapter_mode(model, phase.mode)
    trainable = phase_parameters(model, phase.trains)
    set_trainable(model, trainable)
    return trainable


def fit(
    model: nn.Module,
    phase: Phase,
    train: Part,
    valid: Part,
    domain_names: tuple[str, ...],
    config: TrainConfig,
    *,
    groups: list[int] | None = None,
    label: str | None = None,
    on_epoch: EpochCallback | None = None,
    checkpoint: RunCheckpoint | None = None,
) -> PhaseResult:
    """Run one phase until every group stops improving on validation (or the epoch cap); keep the best weights.

    Per-expert phases take expert views (parts with `experts` set) and train `groups` (default: every expert).
    With a `checkpoint` (moe_mlora.training.resume), the state is saved after an epoch (at most every few
    seconds) and at the end, and a fit that a killed attempt of the same run finished (or had begun) is taken
    from its saved end (or continued after its last saved epoch).
    """
    label = label or phase.name.value
    trainable = enter_phase(model, phase)
    device = next(model.parameters()).device
    index, finished, resumed = checkpoint.next_fit(label) if checkpoint else (0, None, None)
    if finished is not None:
        model.load_state_dict(finished["model"])
        set_rng_state(finished["rng"], device)
        return PhaseResult.from_dict(finished["result"])
    # Under torchrun, gradients are averaged over the processes; the wrapper covers this phase's trainables.
    network = data_parallel(model, find_unused=phase.trains in (Trains.ALL, Trains.ALL_BUT_GATE_EMBEDDING))
    seed = derive_seed(config.seed, phase.seed_key)
    torch.manual_seed(seed)  # dropout masks
    generator = torch.Generator().manual_seed(seed)  # batch order
    n_groups = adapters_of(model)[0].config.n_experts if phase.per_expert else 1
    groups = list(range(n_groups)) if groups is None else list(groups)
    if phase.optimizer is Optimizer.ADAM_PER_EXPERT:
        optimizer = StackedExpertAdam(trainable, n_groups, config.learning_rate)
    else:
        optimizer = ModelAdam(model, trainable, config.learning_rate, weight_decay=phase.weight_decay,
                              decay_all=config.weight_decay)
    valid_rows = (torch.bincount(valid.experts, minlength=n_groups) if phase.per_expert
                  else torch.tensor([len(valid)])).tolist()

    def score_groups(chosen: list[int]) -> dict[int, float]:
        if phase.per_expert:
            return group_scores(model, valid, chosen, config.eval_batch_size)
        return {0: evaluate(model, valid, domain_names, config.eval_batch_size).score(config.select_by)} if chosen else {}

    def combined(scores: dict[int, float]) -> float:
        return combine_scores(scores, dict(enumerate(valid_rows)), config.select_by)

    result = PhaseResult(phase.name.value, phase.granularity.value, config.select_by, config.batch_order,
                         epoch_cap=config.max_epochs,
                         trainable_parameters=sum(p[0].numel() if phase.per_expert else p.numel() for p in trainable)
                         * (len(groups) if phase.per_expert else 1),
                         total_parameters=sum(p.numel() for p in model.parameters()))
    snapshot = Snapshot(trainable, stacked=phase.per_expert, buffers=list(model.buffers()))
    stopping = GroupStopping(groups, n_groups, config.patience, config.min_epochs)
    epoch, elapsed = 0, 0.0
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        generator.set_state(resumed["batch_order"])
        set_rng_state(resumed["rng"], device)
        snapshot.load_state_dict(resumed["snapshot"])
        stopping.load_state_dict(resumed["stopping"])
        result.history = [EpochRecord(**record) for record in resumed["history"]]
        epoch, elapsed = resumed["epoch"], resumed["seconds"]
    else:
        if phase.start_counts:
            stopping.start(score_groups(groups))
        for group in groups:
            snapshot.save(group)
    started = time.perf_counter() - elapsed
    while stopping.active.any() and epoch < config.max_epochs:
        epoch += 1
        epoch_start = time.perf_counter()
        train_loss, n_rows = train_epoch(model, phase, train, optimizer, config, generator, active=stopping.active,
                                         description=f"{label} epoch {epoch}", network=network)
        if not np.isfinite(train_loss):
            raise TrainingDiverged(f"{label}: training loss became {train_loss} in epoch {epoch}")
        seconds = time.perf_counter() - epoch_start
        improved, reverted = stopping.observe(score_groups(stopping.training()), epoch, phase.revert_each_epoch)
        for group in improved:
            snapshot.save(group)
        for group in reverted:
            snapshot.restore(group)
        record = EpochRecord(epoch, train_loss, combined(stopping.current), seconds, n_rows / max(seconds, 1e-9))
        result.history.append(record)
        if checkpoint and checkpoint.epoch_due():
            checkpoint.save_epoch(index, label, {
                "epoch": epoch, "seconds": time.perf_counter() - started, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "batch_order": generator.get_state(), "rng": rng_state(device),
                "snapshot": snapshot.state_dict(), "stopping": stopping.state_dict(),
                "history": [vars(r) for r in result.history]})
        if on_epoch:
            on_epoch(label, record)
    for group in groups:
        snapshot.restore(group)
    result.capped_groups = int(stopping.active.sum())
    if result.capped_groups:
        log.info("%s: the epoch cap (%d) ended %d group(s) still improving", label, config.max_epochs,
                 result.capped_groups)
    result.best_epochs = [stopping.best_epoch[g] for g in groups]
    result.best_scores = [float(stopping.best[g]) for g in groups]
    result.best_epoch = max(result.best_epochs)
    result.improved_groups = sum(e > 0 for e in result.best_epochs)
    result.best_valid_score = combined(stopping.best)
    result.restored_valid_score = combined(score_groups(groups))
    result.seconds = time.perf_counter() - started
    if phase.per_expert:
        result.note = f"{result.improved_groups} of {len(groups)} experts improved on their start"
    if checkpoint:
        checkpoint.save_finished(index, label, {"model": model.state_dict(), "rng": rng_state(device),
                                                "result": dataclasses.asdict(result)})
    return result


def train_epoch(
    model: nn.Module,
    phase: Phase,
    train: Part,
    optimizer: ModelAdam | StackedExpertAdam,
    config: TrainConfig,
    generator: torch.Generator,
    *,
    active: torch.Tensor | None = None,
    description: str = "epoch",
    network: nn.Module | None = None,
) -> tuple[float, int]:
    """One pass over the phase's rows (per-expert phases: the `active` experts' rows); returns the mean
    training loss per row and the number of rows seen. `network` is what the forward runs through: the
    model, or under torchrun its DistributedDataParallel wrapper (made once per phase by `fit`)."""
    n_groups = len(active) if active is not None else 1
    if phase.per_expert and active is None:
        raise ValueError("a per-expert phase trains the experts marked in `active`")
    model.train()
    device = next(model.parameters()).device
    total, n_rows = torch.zeros((), device=device), 0
    processes = world_size()
    network = network if network is not None else model
    if phase.per_expert:
        batches = (batch for chunk in train.chunks(generator)  # one chunk in memory; many for a part on disk
                   for batch in group_batches(chunk, chunk.experts, active, config.batch_size, generator))
        size = int(active[train.experts].sum())
    else:
        batches = epoch_batches(train, config.batch_size, config.batch_order, generator)
        size = len(train)
    with tqdm(total=size, unit="row", unit_scale=True, desc=description, disable=not config.progress, leave=False) as bar:
        for batch in batches:
            if device.type != "cpu":
                batch = batch.to(device)
            counts = torch.bincount(batch.experts, minlength=n_groups) if phase.per_expert else None
            if processes == 1:
                with autocast(config.precision, device):  # the loss stays fp32 whatever the forward's precision
                    logits = network(*batch.model_inputs()).float()
                if phase.per_expert:
                    per_row = nn.functional.binary_cross_entropy_with_logits(logits, batch.labels, reduction="none")
                    loss = (per_row / counts[batch.experts]).sum()  # sum over experts of each one's batch mean
                    present, batch_loss = counts > 0, per_row.detach().sum()
                else:
                    loss = nn.functional.binary_cross_entropy_with_logits(logits, batch.labels)
                    present, batch_loss = None, loss.detach() * len(batch)
            else:  # this process's slice; DDP averages the gradients over the processes (hence the factor)
                mine = local_slice(batch)
                with autocast(config.precision, device):
                    logits = network(*mine.model_inputs()).float()
                per_row = nn.functional.binary_cross_entropy_with_logits(logits, mine.labels, reduction="none")
                weights = counts[mine.experts].to(per_row.dtype) if phase.per_expert else float(len(batch))
                loss = (per_row / weights).sum() * processes
                present, batch_loss = (counts > 0 if phase.per_expert else None), per_row.detach().sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step(present)
            total += batch_loss
            n_rows += len(batch)
            bar.update(len(batch))
    return float(summed(total)) / max(n_rows, 1), n_rows


def fit_one_group_at_a_time(
    model: nn.Module,
    phase: Phase,
    train: Part,
    valid: Part,
    domain_names: tuple[str, ...],
    config: TrainConfig,
    *,
    on_epoch: EpochCallback | None = None,
    checkpoint: RunCheckpoint | None = None,
) -> PhaseResult:
    """The literal schedule of a per-expert phase: `fit` for one expert after another."""
    n_groups = adapters_of(model)[0].config.n_experts
    started = time.perf_counter()
    parts = [fit(model, phase, train, valid, domain_names, config, groups=[g], label=f"{phase.name.value}[{g}]",
                 on_epoch=on_epoch, checkpoint=checkpoint) for g in range(n_groups)]
    valid_rows = dict(enumerate(torch.bincount(valid.experts, minlength=n_groups).tolist()))
    result = PhaseResult(phase.name.value, phase.granularity.value, config.select_by, config.batch_order,
                         history=[record for part in parts for record in part.history],
                         best_epochs=[part.best_epochs[0] for part in parts],
                         best_scores=[part.best_scores[0] for part in parts], epoch_cap=config.max_epochs,
                         capped_groups=sum(part.capped_groups for part in parts),
                         trainable_parameters=sum(part.trainable_parameters for part in parts),
                         total_parameters=parts[0].total_parameters)
    result.best_epoch = max(result.best_epochs)
    result.improved_groups = sum(e > 0 for e in result.best_epochs)
    result.best_valid_score = combine_scores(dict(enumerate(result.best_scores)), valid_rows, config.select_by)
    fresh = group_scores(model, valid, list(range(n_groups)), config.eval_batch_size)
    result.restored_valid_score = combine_scores(fresh, valid_rows, config.select_by)
    result.seconds = time.perf_counter() - started
    result.note = f"sequential: one expert at a time; {result.improved_groups} of {n_groups} experts improved on their start"
    return result
