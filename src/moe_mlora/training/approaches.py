"""Approaches as schedules of phases (see moe_mlora.training.phase), run by the one loop.

* base:      one phase, the whole backbone.
* mlora:     one phase, backbone and per-domain adapters jointly, each row through its domain's adapter.
* moe-mlora: (1) the backbone alone, adapters excluded; (2) the experts, backbone frozen, each expert
             trained only on its domain's rows with the other experts excluded, early-stopped per expert;
             (3) the gate alone, everything else frozen, on all domains. Gate variants: its start
             (`gate_init`: uniform, or routed to each domain's own experts), its learning rate, and its
             input (`gate_input`: the domain, or the domain and the row's tower input).
* moe-mlora with schedule "authors-code": what the authors' TensorFlow code actually does. Its phase
             switches and freezes are no-ops, so every phase trains all parameters through the gated
             mixture, and the gate's domain embedding, re-created untracked in call(), is a fixed random
             vector: (1) all domains; (2) one pass per expert over that expert's domain's rows; (3) all
             domains. Every epoch that does not improve the best validation score is undone (the code
             reloads the best checkpoint), and the best score carries over from phase to phase.
             Known differences: their code selects by mean per-domain AUC and trains by domain (here the
             run's --select-by and --batch-order apply, so arms compare under the same conditions; pass
             `--select-by mean-auc --batch-order by-domain` for theirs); and whether TF 1.12 (which they
             pin) honours the one real freeze, of the gate's dense layer in phases 1-2, is uncertain, so
             here the gate's dense layer trains in every phase.

Every phase of every approach uses the run's batch order and selection metric (TrainConfig).

The MoE-MLoRA authors' TensorFlow code does not actually carry these phases out (its phase switches are
Python flags read once at graph build, its freezing sets attributes Keras ignores, its gate embedding is
re-created untracked). Here freezing is real: requires_grad is cleared and the optimizer only holds the
phase's parameters; the tests check that frozen weights stay bitwise unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch

from moe_mlora.adapters import (
    DEFAULT_LORA_REDUCE, AdapterConfig, AdapterMode, GateInit, GateInput, GateWeights, adapters_of, set_adapter_mode,
)
from moe_mlora.batches import Part, TensorPart
from moe_mlora.errors import ConfigError, DataError
from moe_mlora.settings import check_type, default_of, hints_of, setting
from moe_mlora.layers.domain_part import backbone_state_keys
from moe_mlora.methods import METHODS, get_method
from moe_mlora.methods.method import PART_EMBEDDINGS
from moe_mlora.methods.lora import (
    AUTHORS_CODE_PHASES, LoRASettings, MoEMLoRASettings, Phase2Schedule, Schedule, Selection,
)
from moe_mlora.models import CTRModel
from moe_mlora.training.config import TrainConfig, derive_seed
from moe_mlora.training.diagnostics import gate_routing
from moe_mlora.training.evaluation import evaluate
from moe_mlora.training.loop import (
    EpochCallback,
    PhaseResult,
    fit,
    fit_one_group_at_a_time,
)
from moe_mlora.training.metrics import Evaluation
from moe_mlora.training.resume import RunCheckpoint
from moe_mlora.training.phase import (
    Phase,
    PhaseName,
    Rows,
    set_trainable,
)

APPROACHES = tuple(METHODS)  # every registered method (moe_mlora.methods.registry)


SCHEDULES: dict[str, tuple[Phase, ...]] = {
    **{name: method.phases for name, method in METHODS.items()},
    "moe-mlora/authors-code": AUTHORS_CODE_PHASES,
}
GATE_PHASES = (PhaseName.GATE, PhaseName.AUTHORS_GATE)  # the last phase of each MoE-MLoRA schedule


@dataclass(frozen=True)
class ApproachConfig:
    approach: str = setting("base", help=lambda: f"The multi-domain method, one of the registered ones: {' | '.join(METHODS)}.")
    experts_per_domain: int = setting(1, help="MoE-MLoRA: experts per domain (k).")
    lora_reduce: int | None = setting(None, help="Adapter rank = layer width // this (default: per-model).")
    rank: int | None = setting(None, help="A fixed adapter rank instead of --lora-reduce.")
    phase2_schedule: str = setting(Phase2Schedule.PARALLEL.value, help="MoE-MLoRA phase 2: parallel (all experts in one pass) | sequential.")
    schedule: str = setting(Schedule.PAPER.value, help="MoE-MLoRA: paper (the method as described) | authors-code (what the authors' TF code does: all parameters in every phase, fixed gate embedding, non-improving epochs undone).")
    gate_init: str = setting(GateInit.UNIFORM.value, help="MoE-MLoRA phase 3 starts from: uniform (every expert the same weight) | random (torch's default initialisation, not uniform) | own-domain (each domain routed to its own experts).")
    gate_input: str = setting(GateInput.DOMAIN.value, help="MoE-MLoRA gate input: domain | features (the domain and the row's tower input; per-row, not foldable per domain).")
    gate_learning_rate: float | None = setting(None, help="MoE-MLoRA phase 3 learning rate (default: --learning-rate).")
    # Added after the first sweeps: old records have no such key and were greedy, the default (so their keys hold).
    selection: str = setting(Selection.GREEDY.value, help="MoE-MLoRA phases 2-3 keep: greedy (the untrained start competes as epoch 0 and can be kept) | trained (the best trained epoch, as the paper: every expert and the gate train).")
    # The method's own settings (Method.settings), by name; only those that differ from their defaults are kept,
    # so a setting given at its default leaves the run's key as it was. No option of its own: `train` offers one
    # per method setting (--mmoe-experts, ...).
    method_settings: dict[str, Any] = setting(default_factory=dict, help=None)
    part_embeddings: str = setting(PART_EMBEDDINGS[0], help="How the embeddings a method's parts own start (gates' domain embeddings, a personal prior): torch (N(0, 1), as the shipped records ran) | like-fields (N(0, the field embeddings' std)).")

    def __post_init__(self) -> None:
        method = get_method(self.approach)  # a one-line error naming the registered methods
        object.__setattr__(self, "method_settings", _own_settings(method, self.method_settings))
        own = {spec.name for spec in fields(method.flat_settings)} if method.flat_settings else set()
        lora_only = [spec.name for spec in fields(LoRASettings) if spec.name not in own and getattr(self, spec.name) is not None]
        if lora_only:
            raise ConfigError(f"{', '.join('--' + n.replace('_', '-') for n in lora_only)} set the LoRA adapters' rank: "
                              f"they apply to mlora and moe-mlora, not to {self.approach}")
        if self.part_embeddings not in PART_EMBEDDINGS:
            raise ConfigError(f"part embeddings must be one of {', '.join(PART_EMBEDDINGS)}, got '{self.part_embeddings}'")
        if self.part_embeddings != PART_EMBEDDINGS[0] and method.attach is None:
            raise ConfigError(f"--part-embeddings applies to methods with parts of their own, not to {self.approach}")
        # MoE-MLoRA's settings are checked by its own dataclass (methods/lora.py), for every method (a bad value is
        # a bad value); a method that does not own them must leave them at their defaults.
        moe = MoEMLoRASettings(**{spec.name: getattr(self, spec.name) for spec in fields(MoEMLoRASettings)})
        changed = [spec.name for spec in fields(MoEMLoRASettings)
                   if spec.name not in own and spec.name not in {f.name for f in fields(LoRASettings)}
                   and getattr(moe, spec.name) != spec.default]
        if changed:
            raise ConfigError(f"{', '.join('--' + n.replace('_', '-') for n in changed)} appl"
                              f"{'ies' if len(changed) == 1 else 'y'} to moe-mlora only")

    @property
    def schedule_phases(self) -> tuple[Phase, ...]:
        if self.approach == "moe-mlora" and self.schedule == Schedule.AUTHORS_CODE.value:
            return AUTHORS_CODE_PHASES
        phases = get_method(self.approach).phases
        if self.selection == Selection.TRAINED.value:
            phases = tuple(replace(phase, start_counts=False) for phase in phases)
        return phases

    @property
    def variant(self) -> str:
        """What sets this MoE-MLoRA apart from the paper's (empty for the paper's own, and for Base and MLoRA)."""
        parts = []
        if self.schedule != Schedule.PAPER.value:
            parts.append(self.schedule)
        if self.gate_init != GateInit.UNIFORM.value:
            parts.append(f"gate-init={self.gate_init}")
        if self.gate_input != GateInput.DOMAIN.value:
            parts.append(f"gate-input={self.gate_input}")
        if self.gate_learning_rate is not None:
            parts.append(f"gate-lr={self.gate_learning_rate:g}")
        if self.selection != Selection.GREEDY.value:
            parts.append(f"selection={self.selection}")
        if self.part_embeddings != PART_EMBEDDINGS[0]:
            parts.append(f"part-embeddings={self.part_embeddings}")
        for name, value in sorted(self.method_settings.items()):
            parts.append(f"{name.replace('_', '-')}={'+'.join(map(str, value)) if isinstance(value, list) else value}")
        return ",".join(parts)

    @property
    def arm(self) -> str:
        """The approach with its variant: 'moe-mlora', 'moe-mlora[gate-init=own-domain]', ..."""
        return f"{self.approach}[{self.variant}]" if self.variant else self.approach

    @classmethod
    def from_arm(cls, text: str) -> "ApproachConfig":
        """The inverse of `arm`: 'star[output=domain]', 'moe-mlora[authors-code]', 'mmoe[experts=4]' -> the config
        (a one-line error for an unknown method, key or value)."""
        approach, bracket, rest = text.strip().partition("[")
        if bracket and not rest.endswith("]"):
            raise ConfigError(f"arm '{text}': write it as method or method[key=value,...]")
        method = get_method(approach.strip())
        fields_given: dict[str, Any] = {}
        settings: dict[str, Any] = {}
        hints = hints_of(method.settings) if method.settings is not None else {}
        for part in (p.strip() for p in rest[:-1].split(",") if p.strip()) if bracket else ():
            key, _, value = part.partition("=")
            name = key.replace("-", "_")
            if not value and key in (Schedule.AUTHORS_CODE.value, Schedule.PAPER.value):
                fields_given["schedule"] = key
            elif value and key in _ARM_KEYS:
                fields_given[_ARM_KEYS[key]] = _typed(value, float if key == "gate-lr" else str, f"arm '{text}': {key}")
            elif value and name in hints:
                settings[name] = _typed(value, hints[name], f"arm '{text}': {key}")
            else:
                known = [*_ARM_KEYS, *(n.replace("_", "-") for n in hints)] if method.name == "moe-mlora" else [
                    "part-embeddings", *(n.replace("_", "-") for n in hints)]
                raise ConfigError(f"arm '{text}': '{part}' is no setting of {method.name}; write key=value with keys "
                                  f"{', '.join(known) or '(none)'}")
        return cls(method.name, **fields_given, method_settings=settings)

    @property
    def gate_weights(self) -> str:
        """How the gate is drawn: the authors' Keras defaults for their schedule, torch's for gate_init=random,
        else an exactly uniform start (own-domain then overwrites it with its prior)."""
        if self.schedule == Schedule.AUTHORS_CODE.value:
            return GateWeights.KERAS_DEFAULT.value
        if self.gate_init == GateInit.RANDOM.value:
            return GateWeights.TORCH_DEFAULT.value
        return GateWeights.ZERO_OUTPUT.value

    def adapter_config(self, model_name: str, n_domains: int, run_seed: int) -> AdapterConfig:
        reduce = self.lora_reduce or DEFAULT_LORA_REDUCE.get(model_name, 16)
        return AdapterConfig(self.approach, n_domains, self.experts_per_domain, reduce, self.rank,
                             gate_input=self.gate_input, gate_weights=self.gate_weights,
                             init_seed=derive_seed(run_seed, "adapters"))


# An arm's keys that are ApproachConfig fields (the rest are the method's own settings).
_ARM_KEYS = {"gate-init": "gate_init", "gate-input": "gate_input", "gate-lr": "gate_learning_rate",
             "selection": "selection", "part-embeddings": "part_embeddings"}


def _typed(text: str, hint, where: str) -> Any:
    """An arm's value as its setting's type: a number, text, or a '+'-joined list (as `variant` writes lists)."""
    import types
    import typing

    arguments = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(arguments) == 1:
        hint = arguments[0]
    if typing.get_origin(hint) is tuple:
        return [_typed(item, typing.get_args(hint)[0], where) for item in text.split("+") if item]
    try:
        if hint is bool:
            return {"true": True, "false": False}[text.lower()]
        return hint(text) if hint in (int, float) else text
    except (KeyError, ValueError):
        raise ConfigError(f"{where} takes {'true or false' if hint is bool else 'a number'}, got '{text}'") from None


def split_arms(text: str | None) -> list[str]:
    """'star[output=domain,normalisation=robust],pepnet' -> its arms (commas inside brackets stay)."""
    arms, depth, current = [], 0, ""
    for char in text or "":
        depth += char == "["
        depth -= char == "]"
        if char == "," and depth == 0:
            arms.append(current)
            current = ""
        else:
            current += char
    return [arm.strip() for arm in [*arms, current] if arm.strip()]


def _own_settings(method, given) -> dict[str, Any]:
    """A method's settings as a run stores them: checked against its settings dataclass (a one-line error for an
    unknown name, a wrong type or a bad value), those equal to their defaults left out, lists for tuples."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise ConfigError(f"method settings must be a mapping of name to value, got {given!r}")
    if not given:
        return {}
    if method.settings is None:
        raise ConfigError(f"{method.name} has no settings of its own (got {', '.join(sorted(given))})")
    known = {spec.name: spec for spec in fields(method.settings)}
    for name, value in given.items():
        if name not in known:
            raise ConfigError(f"{method.name} has no setting '{name}'; its settings: {', '.join(known)}")
        check_type(value, hints_of(method.settings)[name], f"{method.name} setting '{name}'")
    method.settings(**given)  # its own checks of the values
    plain = {name: list(value) if isinstance(value, tuple) else value for name, value in given.items()}
    return {name: value for name, value in plain.items()
            if value != (list(default) if isinstance(default := default_of(known[name]), tuple) else default)}


@dataclass
class TrainingReport:
    approach: str
    phases: list[PhaseResult] = field(default_factory=list)
    valid: Evaluation | None = None
    test: Evaluation | None = None
    seconds: float = 0.0
    gate_start: torch.Tensor | None = None  # MoE-MLoRA: (n_domains, E) routing when the last phase began


def expert_view(part: Part, config: AdapterConfig) -> Part:
    """Each row once per expert of its domain, with `experts` set: what phase 2 trains and selects on (a part
    on disk takes the view chunk by chunk)."""
    return part.expert_view(lambda chunk: expert_rows(chunk, config), config.experts_per_domain)


def expert_rows(part: TensorPart, config: AdapterConfig) -> TensorPart:
    k = config.experts_per_domain
    replica = torch.arange(k).repeat_interleave(len(part))
    domains = part.domains.repeat(k)
    repeated = part.map_tensors(lambda tensor: tensor.repeat(k, *[1] * (tensor.dim() - 1)))
    return replace(repeated, domains=domains, experts=config.experts_of_domain(domains, replica))


def load_backbone_state(model: CTRModel, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a trained backbone strictly: every backbone tensor, nothing else."""
    expected = set(backbone_state_keys(model))
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise DataError(f"{source}: not this model's backbone (missing {missing}, unexpected {unexpected})")
    model.load_state_dict({**model.state_dict(), **state}, strict=True)


def train_approach(
    model: CTRModel,
    train: Part,
    valid: Part,
    domain_names: tuple[str, ...],
    approach: ApproachConfig,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
    trained_backbone: tuple[dict, PhaseResult, str] | None = None,
    checkpoint: RunCheckpoint | None = None,
) -> TrainingReport:
    """Run the approach's phases on `model` (adapters are attached here); the model ends ready for inference.

    `trained_backbone` (a Base run's backbone state, its phase result and where it came from; same data,
    model, settings and seed) stands in for MoE-MLoRA's phase 1, which would reproduce it bitwise. With a
    `checkpoint` (moe_mlora.training.resume), a killed attempt of the same run resumes where it stood.
    """
    started = time.perf_counter()
    one_domain = [p.name.value for p in approach.schedule_phases if p.rows is Rows.EACH_EXPERTS_DOMAIN]
    if one_domain and not train.in_memory:
        raise ConfigError(f"{one_domain[0]} selects one domain's rows at a time, which needs the rows in memory; "
                          "--out-of-core data trains the paper's schedule")
    report = TrainingReport(approach.approach)
    method = get_method(approach.approach)
    method.plug_into(model, len(domain_names), config.seed, approach)
    adapters = adapters_of(model)
    adapter_config = adapters[0].config if adapters else None
    for phase in approach.schedule_phases:
        if phase.name is PhaseName.BACKBONE and trained_backbone is not None:
            state, result, source = trained_backbone
            load_backbone_state(model, state, source)
            report.phases.append(replace(result, phase=phase.name.value,
                                         note=f"reused the Base run's backbone ({source}); phase 1 reproduces it bitwise"))
            continue
        phase_config = config
        if phase.name is PhaseName.GATE:
            if approach.gate_learning_rate is not None:
                phase_config = replace(config, learning_rate=approach.gate_learning_rate)
            if approach.gate_init == GateInit.OWN_DOMAIN.value:
                for adapter in adapters_of(model):
                    adapter.gate.route_to_own_experts(adapter.config.ownership())
        handoff = None
        if phase.name is PhaseName.GATE and approach.gate_init == GateInit.BETTER.value:
            handoff = choose_gate_start(model, valid, domain_names, config)
        if phase.name in GATE_PHASES:
            set_adapter_mode(model, AdapterMode.MIXTURE)
            report.gate_start = gate_routing(model, valid).cpu()
        if phase.rows is Rows.OWN_DOMAIN:
            rows, valid_rows = expert_view(train, adapter_config), expert_view(valid, adapter_config)
            run = fit_one_group_at_a_time if approach.phase2_schedule == Phase2Schedule.SEQUENTIAL.value else fit
            report.phases.append(run(model, phase, rows, valid_rows, domain_names, phase_config, on_epoch=on_epoch,
                                     checkpoint=checkpoint))
        elif phase.rows is Rows.EACH_EXPERTS_DOMAIN:
            report.phases.append(_domain_passes(model, phase, train, valid, domain_names, phase_config, adapter_config,
                                                on_epoch, checkpoint))
        else:
            report.phases.append(fit(model, phase, train, valid, domain_names, phase_config, on_epoch=on_epoch,
                                     checkpoint=checkpoint))
        if handoff:
            report.phases[-1].note = " ".join(filter(None, (handoff, report.phases[-1].note)))
    if method.final_mode is not None:
        set_adapter_mode(model, method.final_mode)
    set_trainable(model, list(model.parameters()))
    report.valid = evaluate(model, valid, domain_names, config.eval_batch_size)
    report.seconds = time.perf_counter() - started
    return report


def choose_gate_start(model: CTRModel, valid: Part, domain_names: tuple[str, ...], config: TrainConfig) -> str:
    """The handoff from phase 2 to phase 3 (gate_init "better"): start the gate from the phase-2 model (each
    domain routed to its own experts) when it scores strictly better on validation than the uniform mixture,
    else from the uniform mixture; returns what the record says of the choice."""
    set_adapter_mode(model, AdapterMode.MIXTURE)
    uniform = evaluate(model, valid, domain_names, config.eval_batch_size).score(config.select_by)
    saved = [(adapter.gate, {k: v.clone() for k, v in adapter.gate.state_dict().items()}) for adapter in adapters_of(model)]
    for adapter in adapters_of(model):
        adapter.gate.route_to_own_experts(adapter.config.ownership())
    own = evaluate(model, valid, domain_names, config.eval_batch_size).score(config.select_by)
    if own > uniform:
        return f"gate start: the phase-2 model (own-domain routing, valid {own:.6f} > uniform {uniform:.6f})"
    for gate, state in saved:
        gate.load_state_dict(state)
    return f"gate start: the uniform mixture (valid {uniform:.6f} >= phase-2 model {own:.6f})"


def _domain_passes(model, phase, train, valid, domain_names, config, adapter_config, on_epoch,
                   checkpoint=None) -> PhaseResult:
    """The authors' phase 2: for each expert, a pass (with early stopping) over its domain's training rows.
    With the best score carried over and non-improving epochs undone, the model ends at the best state."""
    started = time.perf_counter()
    passes = []
    for expert in range(adapter_config.n_experts):
        domain = expert % adapter_config.n_domains
        rows = train.select(torch.nonzero(train.domains == domain).squeeze(1))
        passes.append(fit(model, phase, rows, valid, domain_names, config, label=f"{phase.name.value}[{expert}]",
                          on_epoch=on_epoch, checkpoint=checkpoint))
    result = replace(passes[-1], history=[record for one in passes for record in one.history],
                     best_epochs=[one.best_epoch for one in passes], best_scores=[one.best_valid_score for one in passes],
                     capped_groups=sum(one.capped_groups for one in passes),
                     improved_groups=sum(one.improved_groups for one in passes))
    result.best_epoch = len(result.history)
    result.seconds = time.perf_counter() - started
    result.note = (f"one pass per expert over its domain's rows; {result.improved_groups} of {len(passes)} passes "
                   "improved the validation score")
    return result
