"""moe-mlora: multi-domain CTR prediction with Base, MLoRA and MoE-MLoRA towers on eight backbones.

The public API: `train` (one run, from settings or a RunConfig, returning its RunRecord), the config sections
(`RunConfig`, `DatasetConfig`, `ModelConfig`, `ApproachConfig`, `TrainConfig`), `Predictor` (score rows with a
trained run) and `METHODS` / `MODELS` (the registries). They are imported on first use, so `import moe_mlora`
stays light.
"""

__version__ = "0.1.0"

_PUBLIC = {
    "train": ("moe_mlora.api", "train"),
    "config_from_settings": ("moe_mlora.api", "config_from_settings"),
    "RunConfig": ("moe_mlora.run_config", "RunConfig"),
    "RunRecord": ("moe_mlora.experiments.records", "RunRecord"),
    "DatasetConfig": ("moe_mlora.data.config", "DatasetConfig"),
    "ModelConfig": ("moe_mlora.models", "ModelConfig"),
    "ApproachConfig": ("moe_mlora.training.approaches", "ApproachConfig"),
    "TrainConfig": ("moe_mlora.training.config", "TrainConfig"),
    "Predictor": ("moe_mlora.serving.predictor", "Predictor"),
    "METHODS": ("moe_mlora.methods.registry", "METHODS"),
    "MODELS": ("moe_mlora.models.registry", "MODELS"),
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'moe_mlora' has no attribute '{name}'")
    import importlib

    module, attribute = _PUBLIC[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value
