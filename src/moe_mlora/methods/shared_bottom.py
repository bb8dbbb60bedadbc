"""SharedBottom (Caruana, 1997; as a multi-domain baseline in Scenario-Wise Rec, Li et al., 2024).

The backbone's whole tower is the shared bottom; each domain adds a tower of its own on top of it (one
ReLU layer of the tower's output width, here; in training the rows are grouped by domain), and every row goes through its domain's tower. The setting
`output` says where the domain's part ends: `shared` (the default, as the shipped records ran) feeds the
domain towers to the backbone's shared output layer, beside its other logit terms; `domain` ends each domain
tower in its own output unit, as the reference code does, which on parallel backbones also weighs the FM /
cross / CIN / attention / linear terms per domain (moe_mlora.methods.blocks.DomainOutput).

Reference code (Scenario-Wise Rec, models/multi_domain/sharebottom.py) differs: its bottom is a plain MLP
over the embeddings (no interaction layer) and each domain tower ends in its own output unit; its MLPs
carry batch normalisation, which ours (as the backbones') do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moe_mlora.layers.domain_part import TowerPart
from moe_mlora.methods.blocks import StackedMLPs, attach_tower_parts, check_output, output_setting
from moe_mlora.methods.method import Method


@dataclass(frozen=True)
class SharedBottomSettings:
    output: str = output_setting("SharedBottom")

    def __post_init__(self) -> None:
        check_output("shared-bottom", self.output)


class DomainTowers(TowerPart):
    """The shared tower, then each row's domain tower."""

    def __init__(self, n_domains: int, width: int, dropout: float) -> None:
        super().__init__(n_domains)
        self.towers = StackedMLPs(n_domains, [(width, width)], dropout)

    def forward_tower(self, tower, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        self.check_routing_ids(routing_ids)
        return self.towers.forward_own(tower.plain_forward(inputs), routing_ids)


def attach(model, n_domains: int, run_seed: int, approach=None) -> None:
    output = METHOD.settings_of(approach).output
    attach_tower_parts(model, run_seed, lambda tower: DomainTowers(n_domains, tower.out_dim, model.config.dnn_dropout),
                       n_domains if output == "domain" else 0)


METHOD = Method("shared-bottom", "SharedBottom", "Caruana 1997; Scenario-Wise Rec's SharedBottom", attach=attach,
                grows=True, settings=SharedBottomSettings)
