"""The MLP tower every backbone shares: the one place in a backbone where a method's tower part plugs in.

Without a part, the tower computes ReLU(Dropout(W x + b)) per layer, a plain DNN (dropout before the ReLU
equals dropout after it, since dropout scales by a positive factor and ReLU(0) = 0). With a part
(moe_mlora.layers.domain_part.TowerPart: LoRA adapters, STAR's shared-and-domain weights, PPNet's gates,
experts and per-domain towers...), the part computes the tower for each row from its routing id, using the
tower's own layers as the shared backbone.

When a part has been merged for inference (moe_mlora.adapters.merge, explicit), the eval-mode, no-grad
forward runs the merged per-domain layers instead; entering training mode drops the merge.
"""

from __future__ import annotations

import torch
from torch import nn

from moe_mlora.layers.domain_part import TowerPart
from moe_mlora.layers.dropout import FastDropout


class Tower(nn.Module):
    def __init__(self, in_dim: int, hidden: tuple[int, ...] = (256, 128, 64), dropout: float = 0.5) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("a tower needs at least one hidden layer")
        dims = (in_dim, *hidden)
        self.linears = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(len(hidden)))
        for linear in self.linears:
            nn.init.xavier_normal_(linear.weight)
            nn.init.zeros_(linear.bias)
        self.dropout = FastDropout(dropout)
        self.adapter: TowerPart | None = None  # the method's part: LoRA adapters for MLoRA and MoE-MLoRA, ...

    @property
    def in_dim(self) -> int:
        return self.linears[0].in_features

    @property
    def out_dim(self) -> int:
        return self.linears[-1].out_features

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of every linear layer, for building adapters."""
        return [(linear.in_features, linear.out_features) for linear in self.linears]

    def train(self, mode: bool = True) -> "Tower":
        if mode and self.adapter is not None:
            self.adapter.merged = None  # a merge is for inference only; training changes the weights
        return super().train(mode)

    def forward(self, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        """routing_ids: each row's domain id (or expert id when the part routes by expert)."""
        part = self.adapter
        if part is None:
            return self.plain_forward(inputs)
        if part.merged is not None and not self.training and not torch.is_grad_enabled():
            part.check_routing_ids(routing_ids)
            return part.merged.forward(inputs, routing_ids)
        return part.forward_tower(self, inputs, routing_ids)

    def layer(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        """Dropout(W_l x + b_l), before the activation: the backbone's branch of layer `index`."""
        return self.dropout(self.linears[index](hidden))

    def plain_forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = inputs
        for index in range(len(self.linears)):
            hidden = torch.relu(self.layer(index, hidden))
        return hidden
