"""Building blocks shared by the backbones."""

from moe_mlora.layers.embedding import BagEmbedding, FieldEmbedding, LinearTerm
from moe_mlora.layers.mlp import Tower

__all__ = ["BagEmbedding", "FieldEmbedding", "LinearTerm", "Tower"]
