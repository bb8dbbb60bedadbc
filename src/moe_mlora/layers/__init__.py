"""Building blocks shared by the backbones."""

from moe_mlora.layers.embedding import FieldEmbedding, LinearTerm
from moe_mlora.layers.mlp import Tower

__all__ = ["FieldEmbedding", "LinearTerm", "Tower"]
