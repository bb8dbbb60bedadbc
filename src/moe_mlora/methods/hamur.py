"""HAMUR (Li et al., CIKM 2023, "HAMUR: Hyper Adapter for Multi-Domain Recommendation"), read against
Scenario-Wise Rec's models/multi_domain/hamur.py (HamurSmall: an MLP with one adapter cell): a domain-specific
backbone and one adapter shared by every domain whose weights a hypernetwork generates for each row.

* The backbone (setting `backbone`): `domain` (the default, as the paper) gives every domain a tower of its own
  (the tower's shapes, fresh weights; rows grouped by domain in training, about one tower a step) ending in the
  domain's own output unit over everything the backbone feeds its output (moe_mlora.methods.blocks.DomainOutput);
  `shared` keeps the backbone's own tower and output layer, so only the hyper adapter is domain-aware.
* The adapter cell, after the tower's last hidden layer (width m): the hypernetwork (an MLP over the tower's
  input, hidden widths `hypernet_hidden`, ReLU) gives each row a k x k core H (k: `rank`); the cell computes
  h + Norm(sigmoid(h (U1 H V1) + b1) (U2 H V2) + b2), a bottleneck of width `bottleneck` (U: m x k, V: k x 32 and
  back), shared by every domain. Norm is a batch normalisation with a scale and shift (the paper's "domain norm").

Deviations from the reference code: U and V start Glorot normal (theirs start at ones, which makes every
generated matrix rank one at the start); the norm uses running moments at inference (theirs the moments of the
batch being scored, so a row's score depends on its batch-mates); its layers carry batch normalisation, ours
(as the backbones') do not; one cell, after the last hidden layer (HamurSmall's form; HamurLarge has two).
No growth rule for add-domain.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from moe_mlora.errors import ConfigError
from moe_mlora.layers.domain_part import TowerPart
from moe_mlora.methods.blocks import StackedMLPs, attach_tower_parts
from moe_mlora.methods.method import Method
from moe_mlora.settings import setting

BACKBONES = ("domain", "shared")


@dataclass(frozen=True)
class HAMURSettings:
    backbone: str = setting("domain", help="HAMUR: domain (a tower and output unit per domain, as the paper) | shared (the backbone's own tower and output; only the hyper adapter adapts).")
    rank: int = setting(8, help="HAMUR: the size k of each row's generated k x k core.")
    bottleneck: int = setting(32, help="HAMUR: the adapter cell's bottleneck width.")
    hypernet_hidden: tuple[int, ...] = setting((64,), help="HAMUR: hidden widths of the hypernetwork over the tower's input.")

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"hamur backbone must be one of {', '.join(BACKBONES)}, got '{self.backbone}'")
        if min(self.rank, self.bottleneck, *self.hypernet_hidden) < 1:
            raise ConfigError("hamur rank, bottleneck and hypernet widths must be at least 1")


def _glorot(*shape: int) -> nn.Parameter:
    return nn.Parameter(nn.init.xavier_normal_(torch.empty(*shape)))


class HyperAdapterTower(TowerPart):
    def __init__(self, n_domains: int, layer_shapes: list[tuple[int, int]], dropout: float,
                 settings: HAMURSettings) -> None:
        super().__init__(n_domains)
        self.own_towers = StackedMLPs(n_domains, layer_shapes, dropout) if settings.backbone == "domain" else None
        width, k, bottleneck = layer_shapes[-1][1], settings.rank, settings.bottleneck
        layers, in_dim = [], layer_shapes[0][0]
        for hidden in settings.hypernet_hidden:
            layers += [nn.Linear(in_dim, hidden), nn.ReLU()]
            in_dim = hidden
        self.hypernet = nn.Sequential(*layers, nn.Linear(in_dim, k * k))
        self.k = k
        self.down_u, self.down_v = _glorot(width, k), _glorot(k, bottleneck)
        self.up_u, self.up_v = _glorot(bottleneck, k), _glorot(k, width)
        self.down_bias, self.up_bias = nn.Parameter(torch.zeros(bottleneck)), nn.Parameter(torch.zeros(width))
        self.norm = nn.BatchNorm1d(width)

    def backbone(self, tower, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        if self.own_towers is None:
            return tower.plain_forward(inputs)
        return self.own_towers.forward_own(inputs, routing_ids)

    def forward_tower(self, tower, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        self.check_routing_ids(routing_ids)
        hidden = self.backbone(tower, inputs, routing_ids)
        core = self.hypernet(inputs).view(-1, self.k, self.k)
        down = torch.bmm((hidden @ self.down_u).unsqueeze(1), core).squeeze(1) @ self.down_v
        bottleneck = torch.sigmoid(down + self.down_bias)
        up = torch.bmm((bottleneck @ self.up_u).unsqueeze(1), core).squeeze(1) @ self.up_v
        return hidden + self.norm(up + self.up_bias)


def attach(model, n_domains: int, run_seed: int, approach=None) -> None:
    settings = METHOD.settings_of(approach)
    attach_tower_parts(model, run_seed, lambda tower: HyperAdapterTower(n_domains, tower.layer_shapes,
                                                                         model.config.dnn_dropout, settings),
                       n_domains if settings.backbone == "domain" else 0)


METHOD = Method("hamur", "HAMUR", "Li et al., CIKM 2023; Scenario-Wise Rec's HAMUR", attach=attach, settings=HAMURSettings)
