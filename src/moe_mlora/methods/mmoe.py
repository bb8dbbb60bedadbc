"""MMoE (Ma et al., KDD 2018), with domains as tasks (as in Scenario-Wise Rec, Li et al., 2024).

E experts, each a tower of the backbone's shape: the backbone's own tower is expert 0, E - 1 more are
added. Each domain has a softmax gate over the experts computed from the tower's input, and a tower of its
own (one ReLU layer; in training the rows are grouped by domain, each through its own tower) over its mixture, which ends in the backbone's shared output layer (`output` shared, the
default, as the shipped records ran) or in the domain's own output unit (`output` domain, as the reference code;
on parallel backbones it also weighs the FM / cross / CIN / attention / linear terms per domain). E is the setting `experts` (`--mmoe-experts`); by default the number of
domains, at least 2 and at most 8 (Scenario-Wise Rec uses one expert per domain); every expert runs on every row,
so a step costs about E towers.

Reference code (Scenario-Wise Rec, models/multi_domain/mmoe.py) differs: experts are plain MLPs over the
embeddings with batch normalisation, and its gates are a linear layer with batch normalisation before the
softmax; here the gate is the paper's softmax(W x).

No growth rule for add-domain: the number of experts follows the number of domains.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moe_mlora.layers.domain_part import TowerPart
from moe_mlora.methods.blocks import DomainMixer, StackedMLPs, attach_tower_parts, check_output, output_setting
from moe_mlora.errors import ConfigError
from moe_mlora.methods.method import Method
from moe_mlora.settings import setting

MAX_EXPERTS = 8  # the default's cap


@dataclass(frozen=True)
class MMoESettings:
    experts: int | None = setting(None, help="MMoE: experts, the backbone's tower among them (default: one per domain, at least 2, at most 8).")
    output: str = output_setting("MMoE")

    def __post_init__(self) -> None:
        check_output("mmoe", self.output)
        if self.experts is not None and self.experts < 2:
            raise ConfigError(f"mmoe experts must be at least 2 (the backbone's tower and one more), got {self.experts}")

    def experts_for(self, n_domains: int) -> int:
        return self.experts if self.experts is not None else min(max(n_domains, 2), MAX_EXPERTS)


class MultiGateExperts(TowerPart):
    def __init__(self, n_domains: int, layer_shapes: list[tuple[int, int]], dropout: float, n_experts: int) -> None:
        super().__init__(n_domains)
        self.experts = StackedMLPs(n_experts - 1, layer_shapes, dropout)
        self.gates = DomainMixer(n_domains, layer_shapes[0][0], n_experts)
        width = layer_shapes[-1][1]
        self.towers = StackedMLPs(n_domains, [(width, width)], dropout)

    def forward_tower(self, tower, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        self.check_routing_ids(routing_ids)
        experts = torch.cat([tower.plain_forward(inputs).unsqueeze(1), self.experts(inputs)], dim=1)
        mixture = (self.gates(inputs, routing_ids).unsqueeze(2) * experts).sum(1)
        return self.towers.forward_own(mixture, routing_ids)


def attach(model, n_domains: int, run_seed: int, approach=None) -> None:
    settings = METHOD.settings_of(approach)
    experts = settings.experts_for(n_domains)
    attach_tower_parts(model, run_seed, lambda tower: MultiGateExperts(n_domains, tower.layer_shapes,
                                                                        model.config.dnn_dropout, experts),
                       n_domains if settings.output == "domain" else 0)


METHOD = Method("mmoe", "MMoE", "Ma et al., KDD 2018; Scenario-Wise Rec's MMOE", attach=attach, settings=MMoESettings)
