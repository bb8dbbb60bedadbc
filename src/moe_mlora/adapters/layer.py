"""Low-rank domain adapters for any backbone's MLP tower: the stacked experts, the gate, the forward paths.

For every linear layer l of the tower, with backbone output h = W_l x + b_l, the adapted layer computes

    ReLU(Dropout(h) + sum_e g_e(row) * (B_{l,e} A_{l,e} x + c_{l,e}))

over E low-rank experts (A: in x r_l, B: r_l x out, c: out). Every approach is a choice of routing
weights g (batch x E), set by the adapter's mode (see AdapterMode):

* MLoRA (Yang et al., 2024): E = n_domains, g = one-hot of the row's domain.
* MoE-MLoRA: E = k * n_domains with BACKBONE (g = 0), EXPERT (g = one-hot of the row's expert id) and
  MIXTURE (g = softmax(Linear(domain embedding))).

Experts are stacked tensors, so one routing of any kind costs two matrix products per layer
(x @ A_all, then (z * g) @ B_all), with no Python loop over domains or experts. One-hot routing gives
excluded experts an exact zero contribution and exactly zero gradient. For inference, moe_mlora.adapters.merge
folds each domain's routed experts into its own copy of the layer, explicitly.

Initialisation follows LoRA: A Glorot, B and c zeros, so a fresh adapter leaves the backbone unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from moe_mlora.adapters.config import AdapterConfig, AdapterMode, GateInput, GateWeights
from moe_mlora.errors import ConfigError
from moe_mlora.layers.domain_part import TowerPart
from moe_mlora.layers.mlp import Tower


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
    """MoE-MLoRA's gate: softmax over the E experts of Linear(domain embedding) plus a fixed per-domain prior.

    The prior (zero unless `route_to_own_experts` set it) lets phase 3 start from the phase-2 routing.
    With `feature_dim`, the linear layer also sees the row's features (the tower's input): a per-row gate.
    `weights` (GateWeights) says how the weights are drawn; the default starts exactly uniform.
    """

    def __init__(self, n_domains: int, n_experts: int, embedding_dim: int = 4, feature_dim: int = 0,
                 weights: str = GateWeights.ZERO_OUTPUT.value) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.domain_embedding = nn.Embedding(n_domains, embedding_dim)
        self.to_experts = nn.Linear(embedding_dim + feature_dim, n_experts)
        self.register_buffer("prior", torch.zeros(n_domains, n_experts))
        with torch.no_grad():
            if weights == GateWeights.ZERO_OUTPUT.value:  # like LoRA's B = 0: uniform now, learns from step one
                self.to_experts.weight.zero_()
                self.to_experts.bias.zero_()
            elif weights == GateWeights.KERAS_DEFAULT.value:
                nn.init.uniform_(self.domain_embedding.weight, -0.05, 0.05)
                nn.init.xavier_uniform_(self.to_experts.weight)
                self.to_experts.bias.zero_()

    def forward(self, domains: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        gate_input = self.domain_embedding(domains)
        if self.feature_dim:
            gate_input = torch.cat([gate_input, features], dim=1)
        return torch.softmax(self.to_experts(gate_input) + self.prior[domains], dim=-1)

    @torch.no_grad()
    def route_to_own_experts(self, ownership: torch.Tensor, leak: float = 1e-4) -> None:
        """Make every domain's mixture put all but about `leak` of its weight on its own experts, 1/k each."""
        own, total = ownership.sum(1, keepdim=True), ownership.shape[1]
        gap = torch.log((total - own).clamp_min(1) / own / leak)
        self.to_experts.weight.zero_()
        self.to_experts.bias.zero_()
        self.prior.copy_(ownership * gap)


class TowerAdapter(TowerPart):
    """Attached to a Tower: routing weights once per batch, then a low-rank correction beside every layer."""

    def __init__(self, config: AdapterConfig, layer_shapes: list[tuple[int, int]]) -> None:
        super().__init__(config.n_domains)
        self.config = config
        ranks = [config.rank_for(out_dim) for _, out_dim in layer_shapes]
        # Leaving the global RNG untouched keeps everything after attaching (dropout masks above all)
        # as it would be without adapters: MoE-MLoRA's phase 1 then reproduces Base training bitwise.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.init_seed)
            self.experts = LowRankExperts(config.n_experts, layer_shapes, ranks)
            feature_dim = layer_shapes[0][0] if config.gate_input == GateInput.FEATURES.value else 0
            self.gate = (DomainGate(config.n_domains, config.n_experts, config.gate_embedding_dim, feature_dim,
                                    config.gate_weights) if config.kind == "moe-mlora" else None)
        self.mode = AdapterMode.DOMAIN if config.kind == "mlora" else AdapterMode.MIXTURE
        # self.merged: a MergedTower while merged for inference (moe_mlora.adapters.merge)

    def check_routing_ids(self, ids: torch.Tensor) -> None:
        if not self.validate_ids:
            return
        limit = self.config.n_experts if self.mode is AdapterMode.EXPERT else self.config.n_domains
        if ids.numel() and (int(ids.max()) >= limit or int(ids.min()) < 0):
            what = "expert" if self.mode is AdapterMode.EXPERT else "domain"
            bad = int(ids.max()) if int(ids.max()) >= limit else int(ids.min())
            raise ConfigError(f"{what} id {bad} is unknown: the adapter was built for {limit} {what}s")

    @property
    def routes_by_domain_alone(self) -> bool:
        """True where every row of a domain gets the same routing weights (then the merge applies)."""
        if self.mode is AdapterMode.MIXTURE:
            return self.gate.feature_dim == 0
        return self.mode in (AdapterMode.DOMAIN, AdapterMode.OWN_EXPERTS)

    def own_expert_weights(self) -> torch.Tensor:
        """(n_domains, E): 1/k on each of a domain's own experts."""
        ownership = self.config.ownership().to(self.experts.down[0])
        return ownership / self.config.experts_per_domain

    def routing_table(self) -> torch.Tensor:
        """Routing weights of each domain, (n_domains, E): where routing depends on the domain alone."""
        if not self.routes_by_domain_alone:
            raise ConfigError(f"routing in {self.mode.value} mode does not depend on the domain alone")
        ids = torch.arange(self.config.n_domains, device=self.experts.down[0].device)
        if self.mode is AdapterMode.MIXTURE:
            return self.gate(ids)
        if self.mode is AdapterMode.OWN_EXPERTS:
            return self.own_expert_weights()
        return self.one_hot(ids)

    def one_hot(self, ids: torch.Tensor) -> torch.Tensor:
        """(batch, E) one-hot rows (a comparison, which export can trace; torch's one_hot checks the data)."""
        experts = torch.arange(self.config.n_experts, device=ids.device)
        return (ids.unsqueeze(1) == experts).to(self.experts.down[0].dtype)

    def routing(self, routing_ids: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor | None:
        """(batch, E) weights; routing_ids are domain ids, or expert ids in EXPERT mode; `inputs` (the
        tower's input rows) feed a feature gate."""
        if self.mode is AdapterMode.BACKBONE:
            return None
        self.check_routing_ids(routing_ids)
        if self.mode is AdapterMode.MIXTURE:
            return self.gate(routing_ids, inputs)
        if self.mode is AdapterMode.OWN_EXPERTS:
            return self.own_expert_weights()[routing_ids]
        return self.one_hot(routing_ids)

    def forward_tower(self, tower: Tower, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        """ReLU(Dropout(W_l x + b_l) + sum_e g_e (B_e A_e x + c_e)) per layer; the bare tower in BACKBONE mode."""
        routing = self.routing(routing_ids, inputs)
        if routing is None:
            return tower.plain_forward(inputs)
        hidden = inputs
        for index in range(len(tower.linears)):
            hidden = torch.relu(tower.layer(index, hidden) + self.experts(index, hidden, routing))
        return hidden

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
    """The model's LoRA adapters (MLoRA, MoE-MLoRA); other methods' parts are not adapters."""
    return [tower.adapter for tower in towers_of(model) if isinstance(tower.adapter, TowerAdapter)]


def set_adapter_mode(model: nn.Module, mode: AdapterMode) -> None:
    for adapter in adapters_of(model):
        if mode is AdapterMode.MIXTURE and adapter.gate is None:
            raise ConfigError("MIXTURE mode needs a MoE-MLoRA adapter (MLoRA has no gate)")
        if mode is AdapterMode.EXPERT and adapter.config.kind != "moe-mlora":
            raise ConfigError("EXPERT mode needs a MoE-MLoRA adapter")
        adapter.mode = mode
        adapter.merged = None
