"""The eight CTR backbones, one file each, over shared layers."""

from moe_mlora.models.base import CTRModel, ModelConfig
from moe_mlora.models.registry import MODELS, build_model

__all__ = ["CTRModel", "MODELS", "ModelConfig", "build_model"]
