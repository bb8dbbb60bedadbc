"""What an adapter is: its kind, its experts and their ranks, and the one rule that numbers experts.

Expert numbering (the only place that knows it): with n domains and k experts per domain, expert e
belongs to domain e mod n, so domain d owns experts d, d + n, ..., d + (k - 1) n. MLoRA is the case
k = 1 with exactly one adapter per domain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum

import torch

from moe_mlora.errors import ConfigError

ADAPTER_KINDS = ("mlora", "moe-mlora")

# r_l = hidden_l // reduce, per backbone, from the MLoRA authors' MovieLens configs.
DEFAULT_LORA_REDUCE = {"autoint": 4, "nfm": 4, "wdl": 16, "pnn": 16, "dcn": 16, "deepfm": 32, "fibinet": 32, "xdeepfm": 32}


class AdapterMode(str, Enum):
    """The forward path: which experts a row goes through, and with which weights."""

    BACKBONE = "backbone"  # adapters excluded: the bare backbone
    DOMAIN = "domain"  # MLoRA: the row's domain adapter (routing ids are domain ids)
    EXPERT = "expert"  # MoE phase 2: routing ids are expert ids; only that expert is active
    OWN_EXPERTS = "own-experts"  # each row through its domain's own experts, 1/k each (the phase-2 model)
    MIXTURE = "mixture"  # MoE phase 3 and inference: the gate mixes all experts (routing ids are domain ids)


class GateInput(str, Enum):
    DOMAIN = "domain"  # the paper's gate: softmax(Linear(domain embedding)), the same for all rows of a domain
    FEATURES = "features"  # also sees the row's tower input (its field embeddings): per-row, not foldable per domain


class GateInit(str, Enum):
    """Where MoE-MLoRA's phase 3 starts (an approach setting)."""

    UNIFORM = "uniform"  # exactly uniform over all experts: the gate's output layer starts at zero
    RANDOM = "random"  # torch's default initialisation (embedding N(0,1), a Linear with a random bias): not uniform
    OWN_DOMAIN = "own-domain"  # phase 3 starts routed (almost) entirely to each domain's own experts
    # The handoff that keeps greedy selection's promise through phase 3: the better on validation of the
    # phase-2 model (own-domain routing) and the uniform mixture; a tie keeps the uniform start.
    BETTER = "better"


class GateWeights(str, Enum):
    """How the gate's weights are drawn when the adapter is built (an adapter setting)."""

    ZERO_OUTPUT = "zero-output"  # embedding N(0,1), output layer zero: softmax exactly uniform, gradients still flow
    TORCH_DEFAULT = "torch-default"  # nn.Embedding N(0,1), nn.Linear kaiming-uniform weight and uniform bias
    KERAS_DEFAULT = "keras-default"  # the authors' TF/Keras defaults: embedding U(-0.05, 0.05), glorot-uniform kernel,
    # zero bias (their gate is then nearly domain-blind: the logits' spread is tiny)


@dataclass(frozen=True)
class AdapterConfig:
    kind: str  # "mlora" | "moe-mlora"
    n_domains: int
    experts_per_domain: int = 1
    lora_reduce: int | None = 16  # r_l = max(1, out_l // lora_reduce) ...
    rank: int | None = None  # ... unless a fixed rank is given
    gate_embedding_dim: int = 4
    gate_input: str = GateInput.DOMAIN.value
    gate_weights: str = GateWeights.ZERO_OUTPUT.value
    init_seed: int = 0  # adapters draw their init from their own generator, not the global one

    def __post_init__(self) -> None:
        if self.kind not in ADAPTER_KINDS:
            raise ConfigError(f"adapter kind must be 'mlora' or 'moe-mlora', got '{self.kind}'")
        if self.kind == "mlora" and self.experts_per_domain != 1:
            raise ConfigError("MLoRA has exactly one adapter per domain (experts_per_domain=1)")
        if self.experts_per_domain < 1 or self.n_domains < 1:
            raise ConfigError("need at least one domain and one expert per domain")
        if self.rank is None and not self.lora_reduce:
            raise ConfigError("give a fixed rank or a lora_reduce factor")
        if self.rank is not None and self.rank < 1:
            raise ConfigError(f"adapter rank must be at least 1, got {self.rank}")
        if self.lora_reduce is not None and self.lora_reduce < 1:
            raise ConfigError(f"lora_reduce must be at least 1, got {self.lora_reduce}")
        for name, kind in (("gate_input", GateInput), ("gate_weights", GateWeights)):
            try:
                kind(getattr(self, name))
            except ValueError:
                raise ConfigError(f"{name.replace('_', ' ')} must be one of {', '.join(g.value for g in kind)}, "
                                  f"got '{getattr(self, name)}'") from None

    @property
    def n_experts(self) -> int:
        return self.n_domains * self.experts_per_domain

    def rank_for(self, out_features: int) -> int:
        return self.rank if self.rank is not None else max(1, out_features // self.lora_reduce)

    def domain_of_expert(self, experts: torch.Tensor) -> torch.Tensor:
        return experts % self.n_domains

    def experts_of_domain(self, domains: torch.Tensor, replica: int) -> torch.Tensor:
        """The replica-th expert (0 <= replica < k) of each domain."""
        return domains + self.n_domains * replica

    def ownership(self) -> torch.Tensor:
        """(n_domains, E) 0/1 table: 1 where the expert belongs to the domain."""
        experts = torch.arange(self.n_experts)
        return (self.domain_of_expert(experts)[None, :] == torch.arange(self.n_domains)[:, None]).float()

    def to_dict(self) -> dict:
        return asdict(self)
