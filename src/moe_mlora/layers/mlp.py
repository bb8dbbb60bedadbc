"""The MLP tower every backbone shares. Its linear layers are the one place where adapters plug in.

Each layer computes ReLU(Dropout(W x + b) + adapter(x)): the adapter (MLoRA or MoE-MLoRA, see
moe_mlora.adapters) adds a low-rank, domain-dependent correction beside the frozen or shared backbone
branch. With no adapter attached the tower is a plain DNN (dropout before the ReLU equals dropout after
it, since dropout scales by a positive factor and ReLU(0) = 0).

When the adapter has been merged for inference (moe_mlora.adapters.merge, explicit), the eval-mode,
no-grad forward runs the merged per-domain layers instead; entering training mode drops the merge.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from moe_mlora.layers.dropout import FastDropout


class MergedLayers(Protocol):
    def forward(self, inputs: torch.Tensor, domains: torch.Tensor) -> torch.Tensor: ...


class AdapterHook(Protocol):
    """What a tower asks of an adapter: routing weights once per batch, then a correction per layer."""

    merged: MergedLayers | None

    def routing(self, routing_ids: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor | None: ...

    def delta(self, layer: int, inputs: torch.Tensor, routing: torch.Tensor | None) -> torch.Tensor | None: ...

    def check_routing_ids(self, routing_ids: torch.Tensor) -> None: ...


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
        self.adapter: AdapterHook | None = None

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
        """routing_ids: each row's domain id (or expert id when the adapter routes by expert)."""
        adapter = self.adapter
        if adapter is not None and adapter.merged is not None and not self.training and not torch.is_grad_enabled():
            adapter.check_routing_ids(routing_ids)
            return adapter.merged.forward(inputs, routing_ids)
        routing = adapter.routing(routing_ids, inputs) if adapter is not None else None
        hidden = inputs
        for index, linear in enumerate(self.linears):
            out = self.dropout(linear(hidden))
            if adapter is not None:
                correction = adapter.delta(index, hidden, routing)
                if correction is not None:
                    out = out + correction
            hidden = torch.relu(out)
        return hidden
