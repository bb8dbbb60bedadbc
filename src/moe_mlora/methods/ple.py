"""PLE (Tang et al., RecSys 2020), with domains as tasks, one extraction level (a CGC layer), as
Scenario-Wise Rec runs it on MovieLens (n_level=1, two specific experts per domain, one shared).

The backbone's own tower is the shared expert; each domain has K specific experts of the tower's shape (the
setting `specific_experts`, `--ple-specific-experts`, default 2).
A row's domain gate (softmax from the tower's input) mixes that domain's specific experts and the shared
one; a tower of the domain's own (one ReLU layer) follows. Every specific expert runs on every row (one
batched product, exportable), so a step costs about n_domains * K + 1 towers: 7 on three domains, 43 on
the 21 occupations.

Reference code (Scenario-Wise Rec, models/multi_domain/ple.py) differs: plain MLP experts over the
embeddings, with batch normalisation in experts and gates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moe_mlora.layers.domain_part import TowerPart
from moe_mlora.methods.blocks import DomainMixer, StackedMLPs, attach_tower_parts, pick
from moe_mlora.errors import ConfigError
from moe_mlora.methods.method import Method
from moe_mlora.settings import setting

SPECIFIC_EXPERTS = 2


@dataclass(frozen=True)
class PLESettings:
    specific_experts: int = setting(SPECIFIC_EXPERTS, help="PLE: specific experts per domain (the backbone's tower is the shared one).")

    def __post_init__(self) -> None:
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
        specific = self.experts(inputs)  # (batch, n*K, width)
        own = routing_ids.unsqueeze(1) * self.specific + torch.arange(self.specific, device=inputs.device)
        own = specific.gather(1, own.unsqueeze(2).expand(-1, -1, specific.shape[2]))  # (batch, K, width)
        experts = torch.cat([own, tower.plain_forward(inputs).unsqueeze(1)], dim=1)
        mixture = (self.gates(inputs, routing_ids).unsqueeze(2) * experts).sum(1)
        return pick(self.towers(mixture), routing_ids)


def attach(model, n_domains: int, run_seed: int, approach=None) -> None:
    specific = METHOD.settings_of(approach).specific_experts
    attach_tower_parts(model, run_seed, lambda tower: ProgressiveExperts(n_domains, tower.layer_shapes,
                                                                          model.config.dnn_dropout, specific))


METHOD = Method("ple", "PLE", "Tang et al., RecSys 2020 (one CGC level); Scenario-Wise Rec's PLE", attach=attach, grows=True,
                settings=PLESettings)
