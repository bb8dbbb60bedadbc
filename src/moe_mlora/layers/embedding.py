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
    """First-order part: one weight per category, summed over fields (the 'wide' / FM linear term)."""

    def __init__(self, spec: FeatureSpec, init_std: float = 0.01) -> None:
        super().__init__()
        self.weights = FieldEmbedding(spec, 1, init_std)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.weights(codes).sum(dim=(1, 2))
