"""What a trained MoE-MLoRA model does with its experts: the gate's routing per domain, and what each
forward path scores.

Per domain: the gate's total weight on the domain's own experts (uniform would give k/E), at the start of
the gate phase and at the end, and the gate's entropy (uniform: log E); for a feature gate, both are
averaged over the domain's validation rows. The gate phase's chosen epoch (0: the start was kept).
Per forward path, validation and test WAUC: the backbone alone, own-experts routing (each row through
its domain's experts, 1/k each) and the gated mixture (the model as trained). What the first two are
depends on the schedule (see PATH_MEANING): with the paper's schedule and k = 1, own-experts routing is the
phase-2 model; with k > 1 it averages experts that phase 2 trained one by one; with the authors' code no
path but the mixture was ever trained as such.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from moe_mlora.adapters import AdapterMode, adapters_of, set_adapter_mode
from moe_mlora.batches import TensorPart
from moe_mlora.training.evaluation import evaluate, predict_logits

PATHS = {"backbone": AdapterMode.BACKBONE, "own-experts": AdapterMode.OWN_EXPERTS, "mixture": AdapterMode.MIXTURE}


def path_meaning(schedule: str, experts_per_domain: int) -> dict[str, str]:
    """What each forward path of a final model is, for a schedule (the labels a report prints)."""
    if schedule == "authors-code":
        return {"backbone": "the shared weights with adapters off (never trained alone: every phase trains all)",
                "own-experts": "each domain's own experts, 1/k each (never trained as such)",
                "mixture": "the gated mixture (the model as trained)"}
    own = ("the phase-2 model (each domain through its own expert)" if experts_per_domain == 1 else
           f"each domain's {experts_per_domain} experts averaged (1/k each; phase 2 trained each expert alone, "
           "so this is not a model phase 2 selected)")
    return {"backbone": "the phase-1 model (the backbone trained alone)", "own-experts": own,
            "mixture": "the gated mixture (the model as trained)"}


@dataclass(frozen=True)
class GateOfDomain:
    domain: str
    own_weight: float  # the gate's total weight on the domain's own experts, at the end
    entropy: float  # nats, at the end
    start_own_weight: float | None = None  # the same when the gate phase began


@dataclass(frozen=True)
class Diagnostics:
    uniform_own_weight: float  # k / E, what a uniform gate gives
    uniform_entropy: float  # log E
    gate: list[GateOfDomain]
    paths: dict[str, dict[str, float]]  # path -> {"valid": WAUC, "test": WAUC}
    gate_chosen_epoch: int | None = None  # the gate phase's chosen epoch (0: its starting gate was kept)

    @property
    def mean_own_weight(self) -> float:
        return float(np.mean([g.own_weight for g in self.gate]))

    @property
    def mean_start_own_weight(self) -> float | None:
        starts = [g.start_own_weight for g in self.gate]
        return None if any(s is None for s in starts) else float(np.mean(starts))

    def to_dict(self) -> dict:
        return {**asdict(self), "mean_own_weight": self.mean_own_weight,
                "mean_start_own_weight": self.mean_start_own_weight}

    @classmethod
    def from_dict(cls, data: dict) -> "Diagnostics":
        return cls(data["uniform_own_weight"], data["uniform_entropy"], [GateOfDomain(**g) for g in data["gate"]],
                   data["paths"], data.get("gate_chosen_epoch"))


@torch.no_grad()
def gate_routing(model: nn.Module, valid: TensorPart) -> torch.Tensor:
    """(n_domains, E) mean gate weights per domain (a domain gate's weights; a feature gate's, averaged
    over the domain's validation rows)."""
    adapter = adapters_of(model)[0]
    if adapter.gate.feature_dim == 0:
        return adapter.gate(torch.arange(adapter.config.n_domains, device=adapter.gate.prior.device)).float()
    captured = []
    hook = adapter.gate.register_forward_hook(lambda module, args, output: captured.append(output.detach()))
    try:
        predict_logits(model, valid)
    finally:
        hook.remove()
    weights = torch.cat(captured).cpu()
    table = torch.zeros(adapter.config.n_domains, weights.shape[1])
    table.index_add_(0, valid.domains, weights)
    return table / torch.bincount(valid.domains, minlength=adapter.config.n_domains).clamp_min(1)[:, None]


def moe_diagnostics(model: nn.Module, valid: TensorPart, test: TensorPart, domain_names: tuple[str, ...],
                    batch_size: int = 8192, gate_start: torch.Tensor | None = None,
                    gate_chosen_epoch: int | None = None) -> Diagnostics:
    """Gate routing (with `gate_start`, the (n_domains, E) routing when the gate phase began) and the three
    forward paths; the model is left in MIXTURE mode."""
    adapter = adapters_of(model)[0]
    config = adapter.config
    set_adapter_mode(model, AdapterMode.MIXTURE)
    routing = gate_routing(model, valid).cpu()
    ownership = config.ownership().to(routing)
    own = (routing * ownership).sum(1)
    start = (gate_start.to(routing) * ownership).sum(1).tolist() if gate_start is not None else [None] * len(own)
    entropy = -(routing * routing.clamp_min(1e-12).log()).sum(1)
    gate = [GateOfDomain(name, float(o), float(h), s) for name, o, h, s in zip(domain_names, own, entropy, start)]
    paths = {}
    for name, mode in PATHS.items():
        set_adapter_mode(model, mode)
        paths[name] = {part: evaluate(model, rows, domain_names, batch_size).wauc
                       for part, rows in (("valid", valid), ("test", test))}
    set_adapter_mode(model, AdapterMode.MIXTURE)
    return Diagnostics(config.experts_per_domain / config.n_experts, float(np.log(config.n_experts)), gate, paths,
                       gate_chosen_epoch)
