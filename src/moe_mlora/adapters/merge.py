"""The explicit, reversible per-domain merge: the one place that knows the merged layout.

Where routing depends on the domain alone (MLoRA, MoE-MLoRA's domain-gated mixture or own experts), every domain sees one fixed
linear map per layer, W_l + sum_e g_{d,e} A_e B_e with bias b_l + sum_e g_{d,e} c_e. `merge_adapters`
folds those into one stacked weight per layer; the tower then sorts rows by domain and runs one grouped
matrix product per layer, so an adapted tower costs what the bare one does, whatever the number of experts.

A merge is a snapshot: it never watches the weights. It is dropped by `unmerge_adapters`, by a change of
adapter mode, and whenever the tower enters training mode; evaluation (`moe_mlora.training.evaluation`)
merges afresh at its start and unmerges at its end, so a merged forward always sees the weights of that
moment, whatever optimizer or manual edit changed them. Only the eval-mode, no-grad forward uses it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from moe_mlora.adapters.layer import TowerAdapter, towers_of
from moe_mlora.errors import ConfigError
from moe_mlora.layers.domain_part import domain_parts
from moe_mlora.layers.mlp import Tower

_GROUPED_MM = getattr(nn.functional, "grouped_mm", None)


def grouped_mm_supports(device: torch.device, dtype: torch.dtype) -> bool:
    """The merged path needs torch's grouped_mm (torch >= 2.9); it is used on CPU, where it pays off."""
    return _GROUPED_MM is not None and device.type == "cpu" and dtype in (torch.float32, torch.float64)


def padded(size: int, dtype: torch.dtype) -> int:
    """Room for `size` columns plus the ones column, rounded up to a 16-byte stride."""
    align = max(1, 16 // torch.empty((), dtype=dtype).element_size())
    return -(-(size + 1) // align) * align


@dataclass(frozen=True)
class MergedTower:
    """Every tower layer merged per domain: weights[l] is (n_domains, in_padded, out_padded).

    Row `in` (the input's ones column) holds the domain's bias and carries the 1 on to column `out`, so
    the bias costs nothing extra; the rest of the padding is zero (grouped_mm wants 16-byte strides).
    """

    weights: tuple[torch.Tensor, ...]
    out_dim: int

    @property
    def n_domains(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, inputs: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        """ReLU MLP with a separate weight per domain: rows sorted by domain, one grouped GEMM per layer.

        Exact: padded input columns meet zero weight rows, padded output columns stay 0 through every
        ReLU, and the ones column stays 1.
        """
        in_padded = self.weights[0].shape[1]
        rows, in_dim = inputs.shape
        order = torch.argsort(domains, stable=True)
        offsets = torch.cumsum(torch.bincount(domains, minlength=self.n_domains), 0).to(torch.int32)
        hidden = inputs.new_zeros(rows, in_padded)
        hidden[:, :in_dim] = inputs.index_select(0, order)
        hidden[:, in_dim] = 1.0
        for weight in self.weights:
            hidden = torch.relu(_GROUPED_MM(hidden, weight, offs=offsets))
        restored = torch.empty_like(order)
        restored[order] = torch.arange(rows, device=order.device)
        return hidden[:, :self.out_dim].index_select(0, restored)


@torch.no_grad()
def fold_per_domain(adapter: TowerAdapter, linears: nn.ModuleList) -> MergedTower:
    """W_l + sum_e g_{d,e} A_e B_e (and the biases) for every domain d and layer l, in the merged layout."""
    table = adapter.routing_table()  # (domains, E)
    n_domains, n_experts = table.shape
    reference = linears[0].weight
    weights = []
    for index, linear in enumerate(linears):
        down, up, bias = adapter.experts.down[index], adapter.experts.up[index], adapter.experts.bias[index]
        _, in_dim, rank = down.shape
        out_dim = up.shape[2]
        routed_up = (table[:, :, None, None] * up).reshape(n_domains, n_experts * rank, out_dim)
        flat_down = down.permute(1, 0, 2).reshape(in_dim, n_experts * rank)
        in_padded, out_padded = padded(in_dim, reference.dtype), padded(out_dim, reference.dtype)
        weight = reference.new_zeros(n_domains, in_padded, out_padded)
        weight[:, :in_dim, :out_dim] = linear.weight.T + flat_down @ routed_up
        weight[:, in_dim, :out_dim] = linear.bias + table @ bias  # the ones column feeds the bias
        weight[:, in_dim, out_dim] = 1.0  # and carries the 1 on to the next layer
        weights.append(weight)
    return MergedTower(tuple(weights), linears[-1].out_features)


def merge_adapters(model: nn.Module) -> int:
    """Fold every mergeable adapter per domain (a snapshot of the current weights); returns how many merged."""
    merged = 0
    for tower in towers_of(model):
        adapter = tower.adapter
        reference = tower.linears[0].weight
        adapter_ok = isinstance(adapter, TowerAdapter) and adapter.routes_by_domain_alone
        if adapter_ok and grouped_mm_supports(reference.device, reference.dtype):
            adapter.merged = fold_per_domain(adapter, tower.linears)
            merged += 1
    return merged


def unmerge_adapters(model: nn.Module) -> None:
    for tower in towers_of(model):
        if tower.adapter is not None:
            tower.adapter.merged = None


@contextmanager
def merged_adapters(model: nn.Module) -> Iterator[nn.Module]:
    """`with merged_adapters(model): ...` scores with freshly merged per-domain layers, then unmerges."""
    adapted = any(isinstance(module, Tower) and module.adapter is not None for module in model.modules())
    if adapted:
        merge_adapters(model)
    try:
        yield model
    finally:
        if adapted:
            unmerge_adapters(model)


@torch.no_grad()
def merge_domain(model: nn.Module, domain: int) -> nn.Module:
    """A plain copy of `model` for one domain: its routed experts folded into every tower layer, adapters
    removed (PEFT's merge_and_unload, per domain). The copy scores that domain's rows exactly as the
    adapted model does, at the cost of the bare backbone; the model itself is left as it was."""
    others = [type(part).__name__ for _, part in domain_parts(model) if not isinstance(part, TowerAdapter)]
    if others:
        raise ConfigError(f"the model's {others[0]} has no per-domain fold into a plain model; export or score it "
                          "for all domains at once")
    merged = copy.deepcopy(model)
    for tower in towers_of(merged):
        adapter = tower.adapter
        if adapter is None:
            continue
        if not adapter.routes_by_domain_alone:
            raise ConfigError(f"the adapter's {adapter.mode.value} routing depends on more than the domain; "
                              "it cannot be merged into one plain model per domain")
        if not 0 <= domain < adapter.config.n_domains:
            raise ConfigError(f"domain id {domain} is unknown: the adapter was built for {adapter.config.n_domains} domains")
        weights = adapter.routing_table()[domain]  # (E,)
        for index, linear in enumerate(tower.linears):
            down, up, bias = adapter.experts.down[index], adapter.experts.up[index], adapter.experts.bias[index]
            delta = torch.einsum("e,eir,ero->io", weights, down, up)  # sum_e g_e A_e B_e: (in, out)
            linear.weight += delta.T
            linear.bias += weights @ bias
        tower.adapter = None
    return merged
