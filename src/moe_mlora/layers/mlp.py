"""The MLP tower every backbone shares. Its linear layers are the one place where adapters plug in.

Each layer computes ReLU(Dropout(W x + b) + adapter(x)): the adapter (MLoRA or MoE-MLoRA, see
moe_mlora.adapters) adds a low-rank, domain-dependent correction beside the frozen or shared backbone
branch. With no adapter attached the tower is a plain DNN (dropout before the ReLU equals dropout after
it, since dropout scales by a positive factor and ReLU(0) = 0).

At inference, when the adapter's routing depends on the domain alone, the adapter may instead fold each
domain's correction into that domain's own copy of every layer; the tower then sorts the rows by domain
and runs one grouped matrix product per layer, which costs what the bare backbone costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from moe_mlora.layers.dropout import FastDropout

_GROUPED_MM = getattr(nn.functional, "grouped_mm", None)


class AdapterHook(Protocol):
    """What a tower asks of an adapter: routing weights once per batch, then a correction per layer."""

    def routing(self, domains: torch.Tensor) -> torch.Tensor | None: ...

    def delta(self, layer: int, inputs: torch.Tensor, routing: torch.Tensor | None) -> torch.Tensor | None: ...

    def per_domain_layers(self, domains: torch.Tensor, linears: nn.ModuleList) -> list[DomainLayer] | None: ...


@dataclass(frozen=True)
class DomainLayer:
    """One tower layer merged per domain, laid out for per_domain_forward: (n_domains, in_padded, out_padded).

    Row `in` (the input's ones column) holds the domain's bias and carries the 1 on to column `out`, so
    the bias costs nothing extra; the rest of the padding is zero (grouped_mm wants 16-byte strides).
    """

    weight: torch.Tensor


def grouped_mm_supports(inputs: torch.Tensor) -> bool:
    """The per-domain path needs torch's grouped_mm (torch >= 2.9); it is used on CPU, where it pays off."""
    return _GROUPED_MM is not None and inputs.device.type == "cpu" and inputs.dtype in (torch.float32, torch.float64)


def padded(size: int, dtype: torch.dtype) -> int:
    """Room for `size` columns plus the ones column, rounded up to a 16-byte stride."""
    align = max(1, 16 // torch.empty((), dtype=dtype).element_size())
    return -(-(size + 1) // align) * align


def per_domain_forward(inputs: torch.Tensor, domains: torch.Tensor, layers: list[DomainLayer], out_dim: int) -> torch.Tensor:
    """ReLU MLP with a separate weight per domain: rows sorted by domain, one grouped GEMM per layer.

    Exact: padded input columns meet zero weight rows, padded output columns stay 0 through every ReLU,
    and the ones column stays 1.
    """
    n_domains, in_padded = layers[0].weight.shape[:2]
    rows, in_dim = inputs.shape
    order = torch.argsort(domains, stable=True)
    offsets = torch.cumsum(torch.bincount(domains, minlength=n_domains), 0).to(torch.int32)
    hidden = inputs.new_zeros(rows, in_padded)
    hidden[:, :in_dim] = inputs.index_select(0, order)
    hidden[:, in_dim] = 1.0
    for layer in layers:
        hidden = torch.relu(_GROUPED_MM(hidden, layer.weight, offs=offsets))
    restored = torch.empty_like(order)
    restored[order] = torch.arange(rows, device=order.device)
    return hidden[:, :out_dim].index_select(0, restored)


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
        if adapter is not None and not self.training and not torch.is_grad_enabled() and grouped_mm_supports(inputs):
            layers = adapter.per_domain_layers(domains, self.linears)
            if layers is not None:
                return per_domain_forward(inputs, domains, layers, self.out_dim)
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
