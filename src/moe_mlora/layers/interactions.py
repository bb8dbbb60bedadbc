"""Feature-interaction blocks of the eight backbones. Inputs are (batch, fields, dim) field embeddings.

Each block follows its original paper; all are vectorised over fields and field pairs.
"""

from __future__ import annotations

import torch
from torch import nn


def field_pairs(n_fields: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices of the pairs i < j, in row-major order."""
    rows, cols = torch.triu_indices(n_fields, n_fields, offset=1)
    return rows, cols


class FactorizationMachine(nn.Module):
    """Second-order FM term (DeepFM): sum_{i<j} <v_i, v_j> = 0.5 * sum_d ((sum_i v_id)^2 - sum_i v_id^2)."""

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        square_of_sum = embeddings.sum(dim=1).pow(2)
        sum_of_square = embeddings.pow(2).sum(dim=1)
        return 0.5 * (square_of_sum - sum_of_square).sum(dim=1)


class BiInteractionPooling(nn.Module):
    """NFM's pooling: sum_{i<j} v_i * v_j as a (batch, dim) vector."""

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return 0.5 * (embeddings.sum(dim=1).pow(2) - embeddings.pow(2).sum(dim=1))


class InnerProduct(nn.Module):
    """PNN's inner-product layer: <v_i, v_j> for every pair i < j, shape (batch, pairs)."""

    def __init__(self, n_fields: int) -> None:
        super().__init__()
        rows, cols = field_pairs(n_fields)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return (embeddings[:, self.rows] * embeddings[:, self.cols]).sum(dim=-1)


class CrossNetwork(nn.Module):
    """DCN's cross layers (vector form): x_{l+1} = x_0 * (x_l . w_l) + b_l + x_l."""

    def __init__(self, in_dim: int, n_layers: int = 2) -> None:
        super().__init__()
        self.kernels = nn.Parameter(torch.empty(n_layers, in_dim))
        self.biases = nn.Parameter(torch.zeros(n_layers, in_dim))
        nn.init.xavier_normal_(self.kernels)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for kernel, bias in zip(self.kernels, self.biases):
            x = x0 * (x @ kernel).unsqueeze(1) + bias + x
        return x


class CompressedInteractionNetwork(nn.Module):
    """xDeepFM's CIN: X^k_h = sum_{i,j} W^{k,h}_{ij} (X^{k-1}_i * X^0_j), sum-pooled over the embedding dim.

    With split_half, all but the last layer send half their feature maps to the output and half onward.
    """

    def __init__(self, n_fields: int, layer_sizes: tuple[int, ...] = (128, 128), split_half: bool = True,
                 activation: str = "relu") -> None:
        super().__init__()
        if split_half and any(size % 2 for size in layer_sizes[:-1]):
            raise ValueError("with split_half every CIN layer but the last needs an even size")
        self.split_half = split_half
        self.activation = {"relu": torch.relu, "identity": lambda t: t, "linear": lambda t: t}[activation]
        self.convolutions = nn.ModuleList()
        previous = n_fields
        self.output_dim = 0
        for index, size in enumerate(layer_sizes):
            self.convolutions.append(nn.Conv1d(previous * n_fields, size, kernel_size=1))
            last = index == len(layer_sizes) - 1
            previous = size // 2 if split_half and not last else size
            self.output_dim += size // 2 if split_half and not last else size

    # Rows per pass when no gradient is kept, on a CPU: the outer products of a whole 8,192-row scoring batch
    # (50 MB at the paper's shapes) outgrow the caches; tiles of 1,024 rows scored ML-1M at 78k rows/s against
    # 29k, one thread, with bitwise the same logits (each row's arithmetic is the same). On a GPU the tiles only
    # add launches: an H200 scored 3.5M rows/s tiled against 8.4M in one pass (benchmarks/cin_tile.py).
    scoring_tile = 1024

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        if (x0.device.type == "cpu" and not torch.is_grad_enabled() and not torch.compiler.is_compiling()
                and len(x0) > self.scoring_tile):
            return torch.cat([self._forward(tile) for tile in x0.split(self.scoring_tile)])
        return self._forward(x0)

    def _forward(self, x0: torch.Tensor) -> torch.Tensor:
        batch, _, dim = x0.shape
        hidden = x0
        outputs = []
        for index, convolution in enumerate(self.convolutions):
            outer = torch.einsum("bhd,bmd->bhmd", hidden, x0).reshape(batch, -1, dim)
            maps = self.activation(convolution(outer))
            if self.split_half and index < len(self.convolutions) - 1:
                hidden, direct = torch.split(maps, maps.shape[1] // 2, dim=1)
            else:
                hidden = direct = maps
            outputs.append(direct)
        return torch.cat(outputs, dim=1).sum(dim=2)


class SqueezeExcitation(nn.Module):
    """FiBiNET's SENET: field weights from mean-pooled embeddings through a bottleneck, then re-weighting."""

    def __init__(self, n_fields: int, reduction_ratio: int = 3) -> None:
        super().__init__()
        reduced = max(1, n_fields // reduction_ratio)
        self.squeeze = nn.Linear(n_fields, reduced, bias=False)
        self.excite = nn.Linear(reduced, n_fields, bias=False)

    def field_weights(self, embeddings: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.excite(torch.relu(self.squeeze(embeddings.mean(dim=2)))))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return embeddings * self.field_weights(embeddings).unsqueeze(2)


class BilinearInteraction(nn.Module):
    """FiBiNET's bilinear layer, 'interaction' type: p_ij = (v_i W_ij) * v_j, one W per pair."""

    def __init__(self, n_fields: int, dim: int) -> None:
        super().__init__()
        rows, cols = field_pairs(n_fields)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.weights = nn.Parameter(torch.empty(len(rows), dim, dim))
        nn.init.xavier_normal_(self.weights)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(batch, fields, dim) -> (batch, pairs, dim)."""
        left = torch.einsum("bpd,pde->bpe", embeddings[:, self.rows], self.weights)
        return left * embeddings[:, self.cols]


class InteractingLayer(nn.Module):
    """AutoInt's multi-head self-attention over fields with a residual connection, then ReLU.

    Scores are plain dot products <W_Q e_m, W_K e_k> as in the AutoInt paper (no 1/sqrt(d) scaling).
    """

    def __init__(self, in_dim: int, attention_dim: int = 8, heads: int = 4, residual: bool = True) -> None:
        super().__init__()
        self.heads, self.attention_dim = heads, attention_dim
        self.has_residual = residual
        # W_Q, W_K, W_V (and W_Res) stacked into one projection: one matrix product instead of four.
        self.projection = nn.Linear(in_dim, (4 if residual else 3) * self.out_dim, bias=False)
        for block in self.projection.weight.split(self.out_dim):
            nn.init.xavier_normal_(block)

    @property
    def out_dim(self) -> int:
        return self.heads * self.attention_dim

    def projections(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(query, key, value[, residual]), each (batch, fields, heads * attention_dim)."""
        return self.projection(embeddings).split(self.out_dim, dim=-1)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        batch, fields, _ = embeddings.shape
        parts = self.projections(embeddings)

        def split_heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, fields, self.heads, self.attention_dim).transpose(1, 2)

        query, key, value = (split_heads(t) for t in parts[:3])
        attention = torch.softmax(query @ key.transpose(-1, -2), dim=-1)
        out = (attention @ value).transpose(1, 2).reshape(batch, fields, self.out_dim)
        if self.has_residual:
            out = out + parts[3]
        return torch.relu(out)
