"""Model files: weights as safetensors beside a JSON config that rebuilds the module.

The backbone (model.safetensors) and the adapter with its gate (adapter.safetensors) are kept apart, so
a small adapter file can be loaded onto a backbone trained elsewhere (as PEFT does for LoRA).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from safetensors.torch import save

from moe_mlora.errors import DataError
from moe_mlora.features import FeatureSpec
from moe_mlora.files import read_safetensors, write_weights
from moe_mlora.layers.domain_part import backbone_state_keys
from moe_mlora.models import CTRModel, ModelConfig, build_model

MODEL_WEIGHTS, MODEL_CONFIG = "model.safetensors", "model.json"


def _backbone_state(model: CTRModel) -> dict:
    """Every tensor that no method part owns (found by structure: moe_mlora.layers.domain_part)."""
    state, keys = model.state_dict(), backbone_state_keys(model)
    return {key: state[key].detach().cpu().contiguous() for key in keys}


def backbone_sha256(model: CTRModel) -> str:
    """Identity of the backbone's weights (every tensor but a method's parts'): what saved parts belong to."""
    return hashlib.sha256(save(_backbone_state(model))).hexdigest()


def save_backbone(model: CTRModel, folder: Path) -> None:
    write_weights(folder, MODEL_WEIGHTS, _backbone_state(model), MODEL_CONFIG,
                  {"model": model.name, "spec": model.spec.to_dict(), "config": model.config.to_dict()})


def load_backbone(folder: Path) -> CTRModel:
    if not (folder / MODEL_CONFIG).is_file():
        raise DataError(f"{folder}: no {MODEL_CONFIG}; not a saved model folder")
    meta = json.loads((folder / MODEL_CONFIG).read_text())
    model = build_model(meta["model"], FeatureSpec.from_dict(meta["spec"]), ModelConfig(**meta["config"]))
    missing, unexpected = model.load_state_dict(read_safetensors(folder / MODEL_WEIGHTS), strict=False)
    if unexpected or missing:  # a freshly built backbone has no method parts: every key is the backbone's
        raise DataError(f"{folder / MODEL_WEIGHTS}: weights do not match the model (missing {missing}, unexpected {unexpected})")
    return model
