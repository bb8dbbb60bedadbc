"""Low-rank domain adapters for any backbone's MLP tower: MLoRA and MoE-MLoRA.

For every linear layer l of the tower, with backbone output h = W_l x + b_l, the adapted layer computes

    ReLU(Dropout(h) + sum_e g_e(row) * (B_{l,e} A_{l,e} x + c_{l,e}))

over E low-rank experts (A: in x r_l, B: r_l x out, c: out). Every approach is a choice of routing
weights g (batch x E):

* MLoRA (Yang et al., 2024): E = n_domains, g = one-hot of the row's domain.
* MoE-MLoRA: E = k * n_domains (expert e belongs to domain e mod n_domains) with three modes:
  BACKBONE (phase 1: g = 0, experts excluded), EXPERT (phase 2: g = one-hot of the row's expert, the
  others excluded) and MIXTURE (phase 3 and inference: g = softmax(Linear(domain embedding))).

Experts are stacked tensors, so one routing of any kind costs two matrix products per layer
(x @ A_all, then (z * g) @ B_all), with no Python loop over domains or experts. One-hot routing gives
excluded experts an exact zero contribution and exactly zero gradient. At inference, where the routing
depends on the domain alone (MLoRA, the mixture), each domain's experts are folded into its own copy of
every layer (the LoRA merge, per domain), so the adapted tower costs what the bare one does.

Initialisation follows LoRA: A Glorot, B and c zeros, so a fresh adapter leaves the backbone unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from moe_mlora.errors import ConfigError, DataError
from moe_mlora.layers.mlp import DomainLayer, Tower, padded

ADAPTER_WEIGHTS, ADAPTER_CONFIG = "adapter.safetensors", "adapter.json"

# r_l = hidden_l // reduce, per backbone, from the MLoRA authors' MovieLens configs.
DEFAULT_LORA_REDUCE = {"autoint": 4, "nfm": 4, "wdl": 16, "pnn": 16, "dcn": 16, "deepfm": 32, "fibinet": 32, "xdeepfm": 32}


class AdapterMode(str, Enum):
    BACKBONE = "backbone"  # adapters excluded: the bare backbone
    DOMAIN = "domain"  # MLoRA: the row's domain adapter
    EXPERT = "expert"  # MoE phase 2: routing ids are expert ids; only that expert is active
    MIXTURE = "mixture"  # MoE phase 3: the gate mixes all experts


@dataclass(frozen=True)
class AdapterConfig:
    kind: str  # "mlora" | "moe-mlora"
    n_domains: int
    experts_per_domain: int = 1
    lora_reduce: int | None = 16  # r_l = max(1, out_l // lora_reduce) ...
    rank: int | None = None  # ... unless a fixed rank is given
    gate_embedding_dim: int = 4
    init_seed: int = 0  # adapters draw their init from their own generator, not the global one

    def __post_init__(self) -> None:
        if self.kind not in ("mlora", "moe-mlora"):
            raise ConfigError(f"adapter kind must be 'mlora' or 'moe-mlora', got '{self.kind}'")
        if self.kind == "mlora" and self.experts_per_domain != 1:
            raise ConfigError("MLoRA has exactly one adapter per domain (experts_per_domain=1)")
        if self.experts_per_domain < 1 or self.n_domains < 1:
            raise ConfigError("need at least one domain and one expert per domain")
        if self.rank is None and not self.lora_reduce:
            raise ConfigError("give a fixed rank or a lora_reduce factor")

    @property
    def n_experts(self) -> int:
        return self.n_domains * self.experts_per_domain

    def rank_for(self, out_features: int) -> int:
        return self.rank if self.rank is not None else max(1, out_features // self.lora_reduce)


class LowRankExperts(nn.Module):
    """E stacked LoRA pairs (plus biases) for each tower layer."""

    def __init__(self, n_experts: int, layer_shapes: list[tuple[int, int]], ranks: list[int]) -> None:
        super().__init__()
        self.n_experts = n_experts
        self.ranks = ranks
        self.down = nn.ParameterList()  # A: (E, in, r)
        self.up = nn.ParameterList()  # B: (E, r, out)
        self.bias = nn.ParameterList()  # c: (E, out)
        for (in_dim, out_dim), rank in zip(layer_shapes, ranks):
            down = torch.empty(n_experts, in_dim, rank)
            for e in range(n_experts):
                nn.init.xavier_uniform_(down[e].T)  # Glorot over (fan_in=in, fan_out=r)
            self.down.append(nn.Parameter(down))
            self.up.append(nn.Parameter(torch.zeros(n_experts, rank, out_dim)))
            self.bias.append(nn.Parameter(torch.zeros(n_experts, out_dim)))

    def forward(self, layer: int, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sum_e weights[:, e] * (B_e A_e x + c_e), as two GEMMs over all experts at once."""
        down, up, bias = self.down[layer], self.up[layer], self.bias[layer]
        experts, in_dim, rank = down.shape
        projected = inputs @ down.permute(1, 0, 2).reshape(in_dim, experts * rank)  # (batch, E*r)
        mixed = (projected.view(-1, experts, rank) * weights.unsqueeze(2)).reshape(-1, experts * rank)
        return mixed @ up.reshape(experts * rank, -1) + weights @ bias


class DomainGate(nn.Module):
    """MoE-MLoRA's gate: a learned domain embedding -> linear -> softmax over the E experts."""

    def __init__(self, n_domains: int, n_experts: int, embedding_dim: int = 4) -> None:
        super().__init__()
        self.domain_embedding = nn.Embedding(n_domains, embedding_dim)
        self.to_experts = nn.Linear(embedding_dim, n_experts)

    def forward(self, domains: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.to_experts(self.domain_embedding(domains)), dim=-1)


class TowerAdapter(nn.Module):
    """Attached to a Tower; the tower asks it for routing once per batch and a correction per layer."""

    def __init__(self, config: AdapterConfig, layer_shapes: list[tuple[int, int]]) -> None:
        super().__init__()
        self.config = config
        ranks = [config.rank_for(out_dim) for _, out_dim in layer_shapes]
        # Leaving the global RNG untouched keeps everything after attaching (dropout masks above all)
        # as it would be without adapters: MoE-MLoRA's phase 1 then reproduces Base training bitwise.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.init_seed)
            self.experts = LowRankExperts(config.n_experts, layer_shapes, ranks)
            self.gate = (DomainGate(config.n_domains, config.n_experts, config.gate_embedding_dim)
                         if config.kind == "moe-mlora" else None)
        self.mode = AdapterMode.DOMAIN if config.kind == "mlora" else AdapterMode.MIXTURE
        self._merged: tuple[tuple, list[DomainLayer]] | None = None  # (parameter versions, layers)

    def _check_ids(self, ids: torch.Tensor) -> None:
        limit = self.config.n_experts if self.mode is AdapterMode.EXPERT else self.config.n_domains
        if ids.numel() and (int(ids.max()) >= limit or int(ids.min()) < 0):
            what = "expert" if self.mode is AdapterMode.EXPERT else "domain"
            raise ConfigError(f"{what} id {int(ids.max())} is unknown: the adapter was built for {limit} {what}s")

    def routing(self, ids: torch.Tensor) -> torch.Tensor | None:
        if self.mode is AdapterMode.BACKBONE:
            return None
        self._check_ids(ids)
        if self.mode is AdapterMode.MIXTURE:
            return self.gate(ids)
        return nn.functional.one_hot(ids, self.config.n_experts).to(self.experts.down[0].dtype)

    def delta(self, layer: int, inputs: torch.Tensor, routing: torch.Tensor | None) -> torch.Tensor | None:
        return None if routing is None else self.experts(layer, inputs, routing)

    def per_domain_layers(self, domains: torch.Tensor, linears: nn.ModuleList) -> list[DomainLayer] | None:
        """For inference: every layer with each domain's routed experts folded in, W_l + sum_e g_{d,e} A_e B_e.

        Only where the routing depends on the domain alone (MLoRA, MoE-MLoRA's mixture). The adapted tower
        then costs what the bare one does, whatever the number of experts. Cached until a parameter changes.
        """
        if self.mode not in (AdapterMode.DOMAIN, AdapterMode.MIXTURE):
            return None
        self._check_ids(domains)
        parameters = [*linears.parameters(), *self.parameters()]
        key = (self.mode, tuple((p.data_ptr(), p._version) for p in parameters))
        if self._merged is None or self._merged[0] != key:
            self._merged = (key, self._merge(linears))
        return self._merged[1]

    def _merge(self, linears: nn.ModuleList) -> list[DomainLayer]:
        n_domains, n_experts = self.config.n_domains, self.config.n_experts
        reference = linears[0].weight
        ids = torch.arange(n_domains, device=reference.device)
        table = (self.gate(ids) if self.mode is AdapterMode.MIXTURE
                 else nn.functional.one_hot(ids, n_experts).to(reference.dtype))  # (domains, E)
        layers = []
        for index, linear in enumerate(linears):
            down, up, bias = self.experts.down[index], self.experts.up[index], self.experts.bias[index]
            _, in_dim, rank = down.shape
            out_dim = up.shape[2]
            routed_up = (table[:, :, None, None] * up).reshape(n_domains, n_experts * rank, out_dim)
            flat_down = down.permute(1, 0, 2).reshape(in_dim, n_experts * rank)
            in_padded, out_padded = padded(in_dim, reference.dtype), padded(out_dim, reference.dtype)
            weight = reference.new_zeros(n_domains, in_padded, out_padded)
            weight[:, :in_dim, :out_dim] = linear.weight.T + flat_down @ routed_up
            weight[:, in_dim, :out_dim] = linear.bias + table @ bias  # the ones column feeds the bias
            weight[:, in_dim, out_dim] = 1.0  # and carries the 1 on to the next layer
            layers.append(DomainLayer(weight))
        return layers

    def expert_parameters(self) -> list[nn.Parameter]:
        return list(self.experts.parameters())

    def gate_parameters(self) -> list[nn.Parameter]:
        return list(self.gate.parameters()) if self.gate is not None else []


def towers_of(model: nn.Module) -> list[Tower]:
    towers = [module for module in model.modules() if isinstance(module, Tower)]
    if not towers:
        raise ConfigError(f"{type(model).__name__} has no MLP tower to adapt")
    return towers


def attach_adapters(model: nn.Module, config: AdapterConfig) -> list[TowerAdapter]:
    """Give every tower of `model` an adapter (replacing any previous one); returns them."""
    adapters = []
    for tower in towers_of(model):
        tower.adapter = TowerAdapter(config, tower.layer_shapes)
        adapters.append(tower.adapter)
    return adapters


def adapters_of(model: nn.Module) -> list[TowerAdapter]:
    return [tower.adapter for tower in towers_of(model) if tower.adapter is not None]


def set_adapter_mode(model: nn.Module, mode: AdapterMode) -> None:
    for adapter in adapters_of(model):
        if mode is AdapterMode.MIXTURE and adapter.gate is None:
            raise ConfigError("MIXTURE mode needs a MoE-MLoRA adapter (MLoRA has no gate)")
        adapter.mode = mode


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    adapter_ids = {id(p) for adapter in adapters_of(model) for p in adapter.parameters()}
    return [p for p in model.parameters() if id(p) not in adapter_ids]


def save_adapters(model: nn.Module, folder: Path) -> None:
    """Adapters and gates only (small files), loadable onto the same backbone with load_adapters."""
    adapters = adapters_of(model)
    if not adapters:
        raise ConfigError("the model carries no adapter to save")
    folder.mkdir(parents=True, exist_ok=True)
    state = {f"{index}.{key}": value.contiguous() for index, adapter in enumerate(adapters)
             for key, value in adapter.state_dict().items()}
    save_file(state, str(folder / ADAPTER_WEIGHTS))
    (folder / ADAPTER_CONFIG).write_text(json.dumps({"config": asdict(adapters[0].config), "towers": len(adapters)}, indent=2))


def load_adapters(model: nn.Module, folder: Path) -> list[TowerAdapter]:
    if not (folder / ADAPTER_CONFIG).is_file():
        raise DataError(f"{folder}: no {ADAPTER_CONFIG}; not a saved adapter folder")
    meta = json.loads((folder / ADAPTER_CONFIG).read_text())
    adapters = attach_adapters(model, AdapterConfig(**meta["config"]))
    if len(adapters) != meta["towers"]:
        raise DataError(f"{folder}: saved for {meta['towers']} tower(s), the model has {len(adapters)}")
    state = load_file(str(folder / ADAPTER_WEIGHTS))
    for index, adapter in enumerate(adapters):
        try:
            adapter.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items() if k.split(".", 1)[0] == str(index)})
        except RuntimeError as exc:
            raise DataError(f"{folder / ADAPTER_WEIGHTS}: does not fit this backbone's tower ({exc})") from None
    return adapters
