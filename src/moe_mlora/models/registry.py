"""Name -> backbone class; build_model('deepfm', spec, dnn_dropout=0.3)."""

from __future__ import annotations

from moe_mlora.errors import ConfigError
from moe_mlora.features import FeatureSpec
from moe_mlora.models.autoint import AutoInt
from moe_mlora.models.base import CTRModel, ModelConfig
from moe_mlora.models.dcn import DCN
from moe_mlora.models.dnn import DNN
from moe_mlora.models.deepfm import DeepFM
from moe_mlora.models.fibinet import FiBiNET
from moe_mlora.models.nfm import NFM
from moe_mlora.models.pnn import PNN
from moe_mlora.models.wdl import WDL
from moe_mlora.models.xdeepfm import XDeepFM

# The paper's eight in its Table 1 order, then the others.
MODELS: dict[str, type[CTRModel]] = {cls.name: cls for cls in (WDL, NFM, AutoInt, PNN, DCN, FiBiNET, DeepFM, XDeepFM, DNN)}
PAPER_MODELS = ("wdl", "nfm", "autoint", "pnn", "dcn", "fibinet", "deepfm", "xdeepfm")  # the paper's grids' default


def build_model(name: str, spec: FeatureSpec, config: ModelConfig | None = None, **overrides) -> CTRModel:
    key = name.lower()
    if key not in MODELS:
        raise ConfigError(f"unknown model '{name}'; choose one of {', '.join(MODELS)}")
    if config is None:
        config = ModelConfig.from_overrides(**overrides)
    elif overrides:
        config = ModelConfig.from_overrides(**{**config.to_dict(), **overrides})
    return MODELS[key](spec, config)
