"""APG (Yan et al., NeurIPS 2022, "APG: Adaptive Parameter Generation Network for Click-Through Rate
Prediction"), read against FuxiCTR's model_zoo/APG (APG_layers.py, APG_DeepFM.py): every tower layer's
weights are generated for each row from a condition, at low rank.

Layer l computes ReLU(Dropout(((x U_l) S_l(z)) V_l + b_l(z))): U_l (in x k) and V_l (k x out) are shared, and a
hypernetwork (an MLP, the setting `hypernet_hidden`, then a linear layer) turns the condition z into the k x k
core S_l(z) and the bias b_l(z) (FuxiCTR's generate_bias). With `overparam` p > 0, U_l = U_left (in x p) U_right
(p x k) and V_l likewise (the paper's over-parameterisation, FuxiCTR's overparam_p); 0 turns it off. The
setting `condition` picks z: `domain` (the default: the paper's group-wise condition on the domain, through a
domain embedding of the method's own, which starts like the field embeddings, N(0, embedding_init_std); every
row of a domain gets the same weights) or `self` (self-wise: z is
the layer's own input, FuxiCTR's default, so the weights adapt per row but see the domain only through the
domain field).

Defaults follow FuxiCTR's test config (k = 8, p = 64, hypernetwork 64-32 ReLU). Deviations: the generated
layers replace the backbone tower's own, which are left in the model unused (so the backbone's file stays the
backbone's; the size tables count them); the rest of the backbone (interaction layer, FM / cross terms, output
layer) is as in Base, as in FuxiCTR's APG_DeepFM, whose FM term is not conditioned either. No growth rule for
add-domain.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from moe_mlora.errors import ConfigError
from moe_mlora.layers.domain_part import TowerPart
from moe_mlora.methods.blocks import attach_tower_parts, domain_embedding
from moe_mlora.methods.method import Method
from moe_mlora.settings import setting

CONDITIONS = ("domain", "self")


@dataclass(frozen=True)
class APGSettings:
    rank: int = setting(8, help="APG: the rank k of every generated layer (a k x k core per row).")
    overparam: int = setting(64, help="APG: over-parameterisation width p of U and V (0: none).")
    hypernet_hidden: tuple[int, ...] = setting((64, 32), help="APG: hidden widths of the hypernetwork that generates each layer's core and bias.")
    condition: str = setting("domain", help="APG: what the weights are generated from: domain (a domain embedding; group-wise) | self (the layer's input; self-wise).")

    def __post_init__(self) -> None:
        if self.rank < 1 or self.overparam < 0 or any(width < 1 for width in self.hypernet_hidden):
            raise ConfigError("apg rank must be at least 1, overparam 0 or more, hypernet widths at least 1; got "
                              f"{self.rank}, {self.overparam}, {list(self.hypernet_hidden)}")
        if self.overparam and self.overparam < self.rank:
            raise ConfigError(f"apg overparam ({self.overparam}) must be 0 or at least the rank ({self.rank})")
        if self.condition not in CONDITIONS:
            raise ConfigError(f"apg condition must be one of {', '.join(CONDITIONS)}, got '{self.condition}'")


def _glorot(*shape: int) -> nn.Parameter:
    return nn.Parameter(nn.init.xavier_normal_(torch.empty(*shape)))


class GeneratedLinear(nn.Module):
    """((x U) S(z)) V + b(z), with S(z) and b(z) from a hypernetwork over the condition z."""

    def __init__(self, in_dim: int, out_dim: int, condition_dim: int, settings: APGSettings) -> None:
        super().__init__()
        k, p = min(settings.rank, in_dim, out_dim), settings.overparam
        self.k, self.out_dim = k, out_dim
        self.u = nn.ParameterList([_glorot(in_dim, p), _glorot(p, k)] if p else [_glorot(in_dim, k)])
        self.v = nn.ParameterList([_glorot(k, p), _glorot(p, out_dim)] if p else [_glorot(k, out_dim)])
        layers, width = [], condition_dim
        for hidden in settings.hypernet_hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.hypernet = nn.Sequential(*layers, nn.Linear(width, k * k + out_dim))

    @staticmethod
    def _product(factors: nn.ParameterList) -> torch.Tensor:
        return factors[0] if len(factors) == 1 else factors[0] @ factors[1]

    def forward(self, inputs: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        generated = self.hypernet(condition)
        bias, core = generated[:, :self.out_dim], generated[:, self.out_dim:].view(-1, self.k, self.k)
        low = torch.bmm((inputs @ self._product(self.u)).unsqueeze(1), core).squeeze(1)
        return low @ self._product(self.v) + bias


class GeneratedTower(TowerPart):
    def __init__(self, n_domains: int, embedding_dim: int, layer_shapes: list[tuple[int, int]],
                 settings: APGSettings, embedding_std: float) -> None:
        super().__init__(n_domains)
        self.by_domain = settings.condition == "domain"
        self.domain_embedding = domain_embedding(n_domains, embedding_dim, embedding_std) if self.by_domain else None
        self.layers = nn.ModuleList(GeneratedLinear(in_dim, out_dim, embedding_dim if self.by_domain else in_dim, settings)
                                    for in_dim, out_dim in layer_shapes)

    def forward_tower(self, tower, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        self.check_routing_ids(routing_ids)
        domain = self.domain_embedding(routing_ids) if self.by_domain else None
        hidden = inputs
        for layer in self.layers:
            hidden = torch.relu(tower.dropout(layer(hidden, domain if self.by_domain else hidden)))
        return hidden


def attach(model, n_domains: int, run_seed: int, approach=None) -> None:
    settings = METHOD.settings_of(approach)
    attach_tower_parts(model, run_seed, lambda tower: GeneratedTower(n_domains, model.config.embedding_dim,
                                                                      tower.layer_shapes, settings,
                                                                      model.config.embedding_init_std))


METHOD = Method("apg", "APG", "Yan et al., NeurIPS 2022; FuxiCTR's APG", attach=attach, settings=APGSettings)
