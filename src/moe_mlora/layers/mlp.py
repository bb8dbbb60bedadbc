"""The MLP tower every backbone shares. Its linear layers are the one place where adapters plug in.

Each layer computes ReLU(Dropout(W x + b) + adapter(x)): the adapter (MLoRA or MoE-MLoRA, see
moe_mlora.adapters) adds a low-rank, domain-dependent correction beside the frozen or shared backbone
branch. With no adapter attached the tower is a plain DNN (dropout before the ReLU equals dropout after
it, since dropout scales by a positive factor and ReLU(0) = 0).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from moe_mlora.layers.dropout import FastDropout


class AdapterHook(Protocol):
    """What a tower asks of an adapter: routing weights once per batch, then a correction per layer."""

    def routing(self, domains: torch.Tensor) -> torch.Tensor | None: ...

    def delta(self, layer: int, inputs: torch.Tensor, routing: torch.Tensor | None) -> torch.Tensor | None: ...


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

    def forward(self, inputs: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        adapter = self.adapter
        routing = adapter.routing(domains) if adapter is not None else None
        hidden = inputs
        for index, linear in enumerate(self.linears):
            out = self.dropout(linear(hidden))
            if adapter is not None:
                correction = adapter.delta(index, hidden, routing)
                if correction is not None:
                    out = out + correction
            hidden = torch.relu(out)
        return hidden
