"""PLE (Tang et al., RecSys 2020), with domains as tasks: `levels` extraction levels (CGC layers), one by
default, as Scenario-Wise Rec runs it on MovieLens (n_level=1, two specific experts per domain, one shared).

The backbone's own tower is the first level's shared expert; each domain has K specific experts of the tower's
shape (the setting `specific_experts`, `--ple-specific-experts`, default 2).
A row's domain gate (softmax from the tower's input) mixes that domain's specific experts and the shared
one; a tower of the domain's own (one ReLU layer) follows, ending in the backbone's shared output layer (`output`
shared, the default, as the shipped records ran) or in the domain's own output unit (`output` domain, as the
reference code; on parallel backbones it also weighs the FM / cross / CIN / attention / linear terms per domain).
With one level, in training the rows are grouped by domain and each group runs through its own K experts only
(about K + 1 towers a step); at inference every specific expert runs on every row (one batched product,
exportable), about n_domains * K + 1 towers: 7 on three domains, 43 on the 21 occupations.

With `levels` L > 1 (the paper's progressive extraction), every level but the last also has a shared gate (from
the shared input) over every expert of the level, whose mixture is the next level's shared input; each domain's
gate mixture is that domain's next input. Levels after the first have one-layer experts of the tower's output
width (K per domain, on the domain's input, and one shared, on the shared input) and per-domain gates from the
domain's input. The shared gate needs every domain's experts on every row, so every level runs all of them, in
training too (about n_domains * K + 1 towers a step). No growth rule for add-domain with L > 1 (the shared gates
span every domain's experts).

Reference code (Scenario-Wise Rec, models/multi_domain/ple.py) differs: plain MLP experts over the
embeddings, with batch normalisation in experts and gates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from moe_mlora.layers.domain_part import TowerPart
from moe_mlora.methods.blocks import (DomainMixer, StackedMLPs, attach_tower_parts, check_output,
                                     output_setting, pick)
from moe_mlora.errors import ConfigError
from moe_mlora.methods.method import Method
from moe_mlora.settings import setting

SPECIFIC_EXPERTS = 2


@dataclass(frozen=True)
class PLESettings:
    specific_experts: int = setting(SPECIFIC_EXPERTS, help="PLE: specific experts per domain (the backbone's tower is the shared one).")
    output: str = output_setting("PLE")
    levels: int = setting(1, help="PLE: extraction levels (CGC layers); levels after the first add a shared gate per level and one-layer experts.")

    def __post_init__(self) -> None:
        check_output("ple", self.output)
        if self.levels < 1:
            raise ConfigError(f"ple levels must be at least 1, got {self.levels}")
        if self.specific_experts < 1:
            raise ConfigError(f"ple specific experts must be at least 1, got {self.specific_experts}")


class DeeperLevel(nn.Module):
    """A PLE level after the first: each domain's K one-layer experts on its own input, one shared expert on the
    shared input, and each domain's gate from its own input."""

    def __init__(self, n_domains: int, specific: int, width: int, dropout: float) -> None:
        super().__init__()
        self.n_domains, self.specific = n_domains, specific
        self.experts = StackedMLPs(n_domains * specific, [(width, width)], dropout)
        self.shared = StackedMLPs(1, [(width, width)], dropout)
        gate = torch.empty(n_domains, width, specific + 1)
        for domain in range(n_domains):
            nn.init.kaiming_uniform_(gate[domain].T, a=5 ** 0.5)  # as an nn.Linear's weight starts
        self.gate_weights, self.gate_biases = nn.Parameter(gate), nn.Parameter(torch.zeros(n_domains, specific + 1))

    def forward(self, domain_inputs: torch.Tensor, shared_input: torch.Tensor):
        """(batch, n, w), (batch, w) -> specific outputs (batch, n*K, w), shared (batch, w), gate logits (batch, n, K+1)."""
        per_expert = domain_inputs.repeat_interleave(self.specific, dim=1)  # expert d*K + k sees domain d's input
        weight, bias = self.experts.weights[0], self.experts.biases[0]
        specific = torch.relu(self.experts.dropout(torch.einsum("bei,eio->beo", per_expert, weight) + bias))
        shared = self.shared(shared_input).squeeze(1)
        logits = torch.einsum("bdi,dio->bdo", domain_inputs, self.gate_weights) + self.gate_biases
        return specific, shared, logits


class ProgressiveExperts(TowerPart):
    def __init__(self, n_domains: int, layer_shapes: list[tuple[int, int]], dropout: float,
                 specific: int = SPECIFIC_EXPERTS, levels: int = 1) -> None:
        super().__init__(n_domains)
        self.specific = specific
        self.experts = StackedMLPs(n_domains * specific, layer_shapes, dropout)  # domain d: d*K .. d*K+K-1
        self.gates = DomainMixer(n_domains, layer_shapes[0][0], specific + 1)
        width = layer_shapes[-1][1]
        self.towers = StackedMLPs(n_domains, [(width, width)], dropout)
        if levels > 1:  # drawn after the first level's parts, so one level draws what it always drew
            everything = n_domains * specific + 1
            self.shared_gates = nn.ModuleList([nn.Linear(layer_shapes[0][0], everything),
                                               *(nn.Linear(width, everything) for _ in range(levels - 2))])
            self.deeper = nn.ModuleList(DeeperLevel(n_domains, specific, width, dropout) for _ in range(levels - 1))

    @property
    def levels(self) -> int:
        return 1 + len(getattr(self, "deeper", ()))

    def grow_into(self, grown: "ProgressiveExperts", shares: torch.Tensor) -> None:
        if self.levels > 1:
            raise ConfigError(f"PLE with {self.levels} levels has no growth rule for a new domain (its shared gates "
                              "span every domain's experts): train it again with the new domain")
        super().grow_into(grown, shares)

    def forward_tower(self, tower, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        self.check_routing_ids(routing_ids)
        if self.levels > 1:
            return self.towers.forward_own(pick(self.every_level(tower, inputs), routing_ids), routing_ids)
        own = self.own_grouped(inputs, routing_ids) if self.training else self.own_every_domain(inputs, routing_ids)
        experts = torch.cat([own, tower.plain_forward(inputs).unsqueeze(1)], dim=1)
        mixture = (self.gates(inputs, routing_ids).unsqueeze(2) * experts).sum(1)
        return self.towers.forward_own(mixture, routing_ids)


    def every_level(self, tower, inputs: torch.Tensor) -> torch.Tensor:
        """Every domain's gated output of the last level, (batch, n, width): each level's domain gates mix that
        domain's experts and the shared one; every level but the last also mixes all its experts into the next
        level's shared input."""
        n, k = self.n_domains, self.specific
        specific, shared = self.experts(inputs), tower.plain_forward(inputs)
        logits = self.gates.logits(inputs).unflatten(1, (n, k + 1))
        shared_input = inputs
        for level in range(self.levels):
            if level:
                specific, shared, logits = self.deeper[level - 1](domain_inputs, shared_input)
            candidates = torch.cat([specific.unflatten(1, (n, k)), shared[:, None, None].expand(-1, n, 1, -1)], dim=2)
            next_inputs = (torch.softmax(logits, dim=-1).unsqueeze(3) * candidates).sum(2)  # (batch, n, width)
            if level < self.levels - 1:
                every = torch.cat([specific, shared.unsqueeze(1)], dim=1)
                weights = torch.softmax(self.shared_gates[level](shared_input), dim=-1).unsqueeze(2)
                shared_input = (weights * every).sum(1)
            domain_inputs = next_inputs
        return domain_inputs

    def own_every_domain(self, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        """Each row's K specific experts, by running every domain's on every row and picking: no data-dependent
        shapes, so the graph exports (inference); about n_domains * K towers."""
        return self.experts.own_block(inputs, routing_ids, self.specific, grouped=False)

    def own_grouped(self, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        """The same with the rows grouped by domain, each group through its own K experts only (training): about
        K towers a step whatever the number of domains."""
        return self.experts.own_block(inputs, routing_ids, self.specific, grouped=True)


def attach(model, n_domains: int, run_seed: int, approach=None) -> None:
    settings = METHOD.settings_of(approach)
    attach_tower_parts(model, run_seed, lambda tower: ProgressiveExperts(n_domains, tower.layer_shapes,
                                                                          model.config.dnn_dropout, settings.specific_experts,
                                                                          settings.levels),
                       n_domains if settings.output == "domain" else 0)


METHOD = Method("ple", "PLE", "Tang et al., RecSys 2020; Scenario-Wise Rec's PLE", attach=attach, grows=True,
                settings=PLESettings)
