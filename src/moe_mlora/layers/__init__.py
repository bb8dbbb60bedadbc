"""Building blocks shared by the backbones, and the seam (domain_part) where methods plug in."""

from moe_mlora.layers.domain_part import DomainPart, ModelPart, OutputPart, TowerPart, domain_parts
from moe_mlora.layers.embedding import BagEmbedding, FieldEmbedding, LinearTerm
from moe_mlora.layers.mlp import Tower

__all__ = ["BagEmbedding", "DomainPart", "FieldEmbedding", "LinearTerm", "ModelPart", "OutputPart", "Tower", "TowerPart", "domain_parts"]
