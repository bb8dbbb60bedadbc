"""AdaSparse (Yang et al., CIKM 2022): a domain-adaptive pruner before every tower layer.

Each pruner reads the domain's embedding and the layer's input, and returns one weighting factor per
neuron, the paper's "fusion" form: pi = beta * sigmoid(alpha * v), set to exactly 0 where it falls below
epsilon (beta = 2, epsilon = 0.01), so a domain can switch neurons off. alpha starts at 1 and grows by
1e-4 with every training step (the paper's annealing towards a hard 0/1 mask). The tower's input and
every hidden layer's output are multiplied by their pruner's factors.

Where the reference code (Scenario-Wise Rec, models/multi_domain/adasparse.py and basic/layers.py Pruner)
differs from the paper: it multiplies by sign(pi - epsilon), so a factor below epsilon becomes -pi
(the neuron's sign flips) instead of 0; here the paper's 0. Neither has the paper's optional sparsity
regulariser; nor does this.

No growth rule for add-domain: alpha is shared by every domain and grows while any domain trains.
"""

from __future__ import annotations

import torch
from torch import nn

from moe_mlora.layers.domain_part import TowerPart
from moe_mlora.methods.blocks import attach_tower_parts
from moe_mlora.methods.method import Method

BETA, EPSILON, ALPHA_STEP = 2.0, 1e-2, 1e-4


class Pruner(nn.Module):
    def __init__(self, domain_dim: int, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(domain_dim + width, width, bias=False)

    def forward(self, domain: torch.Tensor, hidden: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        factors = BETA * torch.sigmoid(alpha * self.linear(torch.cat([domain, hidden], dim=1)))
        return factors * (factors >= EPSILON).to(factors.dtype)


class PrunedTower(TowerPart):
    def __init__(self, n_domains: int, embedding_dim: int, layer_shapes: list[tuple[int, int]]) -> None:
        super().__init__(n_domains)
        self.domain_embedding = nn.Embedding(n_domains, embedding_dim)
        widths = [layer_shapes[0][0], *(out_dim for _, out_dim in layer_shapes)]
        self.pruners = nn.ModuleList(Pruner(embedding_dim, width) for width in widths)
        self.register_buffer("alpha", torch.ones(()))

    def forward_tower(self, tower, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        self.check_routing_ids(routing_ids)
        if self.training:
            self.alpha += ALPHA_STEP
        domain = self.domain_embedding(routing_ids)
        hidden = inputs * self.pruners[0](domain, inputs, self.alpha)
        for index, pruner in enumerate(self.pruners[1:]):
            hidden = torch.relu(tower.layer(index, hidden))
            hidden = hidden * pruner(domain, hidden, self.alpha)
        return hidden


def attach(model, n_domains: int, run_seed: int, approach=None) -> None:
    attach_tower_parts(model, run_seed, lambda tower: PrunedTower(n_domains, model.config.embedding_dim,
                                                                   tower.layer_shapes))


METHOD = Method("adasparse", "AdaSparse", "Yang et al., CIKM 2022; Scenario-Wise Rec's AdaSparse", attach=attach)
