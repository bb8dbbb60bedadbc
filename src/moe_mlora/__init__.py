"""moe-mlora: multi-domain CTR prediction with Base, MLoRA and MoE-MLoRA towers on eight backbones."""

__version__ = "0.1.0"
