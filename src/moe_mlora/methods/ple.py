"""PLE (Tang et al., RecSys 2020), with domains as tasks, one extraction level (a CGC layer), as
Scenario-Wise Rec runs it on MovieLens (n_level=1, two specific experts per domain, one shared).

The backbone's own tower is the shared expert; each domain has K specific experts of the tower's shape (the
setting `specific_experts`, `--ple-specific-experts`, default 2).
A row's domain gate (softmax from the tower's input) mixes that domain's specific experts and the shared
one; a tower of the domain's own (one ReLU layer) follows, ending in the backbone's shared output layer (`output`
shared, the default, as the shipped records ran) or in the domain's own output unit (`output` domain, as the
reference code; on parallel backbones it also weighs the FM / cross / CIN / attention / linear terms per domain). In training the rows are grouped by domain and each
group runs through its own K experts only (about K + 1 towers a step); at inference every specific expert runs on
every row (one batched product, exportable), about n_domains * K + 1 towers: 7 on three domains, 43 on the 21
occupations.

Reference code (Scenario-Wise Rec, models/multi_domain/ple.py) differs: plain MLP experts over the
embeddings, with batch normalisation in experts and gates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moe_mlora.layers.domain_part import TowerPart
from moe_mlora.methods.blocks import (DomainMixer, StackedMLPs, attach_tower_parts, check_output, grouped_by_domain,
                                     output_setting, pick)
from moe_mlora.errors import ConfigError
from moe_mlora.methods.method import Method
from moe_mlora.settings import setting

SPECIFIC_EXPERTS = 2


@dataclass(frozen=True)
class PLESettings:
    specific_experts: int = setting(SPECIFIC_EXPERTS, help="PLE: specific experts per domain (the backbone's tower is the shared one).")
    output: str = output_setting("PLE")

    def __post_init__(self) -> None:
        check_output("ple", self.output)
        if self.specific_experts < 1:
            raise ConfigError(f"ple specific experts must be at least 1, got {self.specific_experts}")


class ProgressiveExperts(TowerPart):
    def __init__(self, n_domains: int, layer_shapes: list[tuple[int, int]], dropout: float,
                 specific: int = SPECIFIC_EXPERTS) -> None:
        super().__init__(n_domains)
        self.specific = specific
        self.experts = StackedMLPs(n_domains * specific, layer_shapes, dropout)  # domain d: d*K .. d*K+K-1
        self.gates = DomainMixer(n_domains, layer_shapes[0][0], specific + 1)
        width = layer_shapes[-1][1]
        self.towers = StackedMLPs(n_domains, [(width, width)], dropout)

    def forward_tower(self, tower, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        self.check_routing_ids(routing_ids)
        own = self.own_grouped(inputs, routing_ids) if self.training else self.own_every_domain(inputs, routing_ids)
        experts = torch.cat([own, tower.plain_forward(inputs).unsqueeze(1)], dim=1)
        mixture = (self.gates(inputs, routing_ids).unsqueeze(2) * experts).sum(1)
        return pick(self.towers(mixture), routing_ids)


    def own_every_domain(self, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        """Each row's K specific experts, by running every domain's on every row and picking: no data-dependent
        shapes, so the graph exports (inference); about n_domains * K towers."""
        specific = self.experts(inputs)  # (batch, n*K, width)
        own = routing_ids.unsqueeze(1) * self.specific + torch.arange(self.specific, device=inputs.device)
        return specific.gather(1, own.unsqueeze(2).expand(-1, -1, specific.shape[2]))  # (batch, K, width)

    def own_grouped(self, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        """The same with the rows grouped by domain, each group through its own K experts only (training): about
        K towers a step whatever the number of domains."""
        order, present, sizes, back = grouped_by_domain(routing_ids, self.n_domains)
        chunks = inputs.index_select(0, order).split(sizes)
        own = torch.cat([self.experts.forward_slice(chunk, domain * self.specific, self.specific)
                         for domain, chunk in zip(present, chunks)])
        return own.index_select(0, back)


def attach(model, n_domains: int, run_seed: int, approach=None) -> None:
    settings = METHOD.settings_of(approach)
    attach_tower_parts(model, run_seed, lambda tower: ProgressiveExperts(n_domains, tower.layer_shapes,
                                                                          model.config.dnn_dropout, settings.specific_experts),
                       n_domains if settings.output == "domain" else 0)


METHOD = Method("ple", "PLE", "Tang et al., RecSys 2020 (one CGC level); Scenario-Wise Rec's PLE", attach=attach, grows=True,
                settings=PLESettings)
