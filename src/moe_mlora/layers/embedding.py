"""All categorical fields in one table: field f's code c is row offsets[f] + c (one gather per batch)."""

from __future__ import annotations

import torch
from torch import nn

from moe_mlora.features import FeatureSpec


class FieldEmbedding(nn.Module):
    def __init__(self, spec: FeatureSpec, dim: int, init_std: float = 0.01) -> None:
        super().__init__()
        self.table = nn.Embedding(spec.total_cardinality, dim)
        nn.init.normal_(self.table.weight, mean=0.0, std=init_std)
        self.register_buffer("offsets", torch.as_tensor(spec.offsets), persistent=False)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """(batch, fields) codes -> (batch, fields, dim) vectors."""
        return self.table(codes + self.offsets)


class LinearTerm(nn.Module):
    """First-order part: one weight per category, summed over fields (the 'wide' / FM linear term), plus the
    mean weight of each bag's tokens and one weight per dense input, where the spec has them."""

    def __init__(self, spec: FeatureSpec, init_std: float = 0.01) -> None:
        super().__init__()
        self.weights = FieldEmbedding(spec, 1, init_std)
        self.bag_weights = BagEmbedding(spec, 1, init_std) if spec.n_bags else None
        self.dense_weights = None
        if spec.n_dense:
            self.dense_weights = nn.Linear(spec.n_dense, 1, bias=False)
            nn.init.normal_(self.dense_weights.weight, mean=0.0, std=init_std)

    def forward(self, codes: torch.Tensor, dense: torch.Tensor | None = None, bags: torch.Tensor | None = None) -> torch.Tensor:
        out = self.weights(codes).sum(dim=(1, 2))
        if self.bag_weights is not None:
            out = out + self.bag_weights(bags).sum(dim=(1, 2))
        if self.dense_weights is not None:
            out = out + self.dense_weights(dense).squeeze(1)
        return out

    def tables(self) -> list[nn.Parameter]:
        extra = [m.weight for m in (self.dense_weights,) if m is not None]
        return [self.weights.table.weight, *([self.bag_weights.table.weight] if self.bag_weights else []), *extra]


class BagEmbedding(nn.Module):
    """Multi-valued fields in one table of their own: each row's tokens (codes, -1 pads) mean-pooled into one
    vector per field (zero for a row without tokens)."""

    def __init__(self, spec: FeatureSpec, dim: int, init_std: float = 0.01) -> None:
        super().__init__()
        self.table = nn.Embedding(int(sum(spec.bag_cardinalities)), dim)
        nn.init.normal_(self.table.weight, mean=0.0, std=init_std)
        self.register_buffer("offsets", torch.as_tensor(spec.bag_offsets), persistent=False)

    def forward(self, bags: torch.Tensor) -> torch.Tensor:
        """(batch, bags, length) codes -> (batch, bags, dim) mean vectors."""
        present = bags >= 0
        vectors = self.table((bags.clamp_min(0) + self.offsets[None, :, None])) * present.unsqueeze(-1)
        return vectors.sum(2) / present.sum(2, keepdim=True).clamp_min(1)
