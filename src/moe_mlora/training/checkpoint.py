"""Model files: weights as safetensors beside a JSON config that rebuilds the module.

The backbone (model.safetensors) and the adapter with its gate (adapter.safetensors) are kept apart, so
a small adapter file can be loaded onto a backbone trained elsewhere (as PEFT does for LoRA).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from safetensors.torch import save, save_file

from moe_mlora.errors import DataError
from moe_mlora.files import atomic_path, write_text_atomic, read_safetensors
from moe_mlora.features import FeatureSpec
from moe_mlora.models import CTRModel, ModelConfig, build_model

MODEL_WEIGHTS, MODEL_CONFIG = "model.safetensors", "model.json"


def _backbone_state(model: CTRModel) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if ".adapter." not in f".{k}"}


def backbone_sha256(model: CTRModel) -> str:
    """Identity of the backbone's weights (every tensor but the adapters'): what a saved adapter belongs to."""
    return hashlib.sha256(save(_backbone_state(model))).hexdigest()


def save_backbone(model: CTRModel, folder: Path) -> None:
    with atomic_path(folder / MODEL_WEIGHTS) as temporary:
        save_file(_backbone_state(model), str(temporary))
    write_text_atomic(folder / MODEL_CONFIG, json.dumps(
        {"model": model.name, "spec": model.spec.to_dict(), "config": model.config.to_dict()}, indent=2))


def load_backbone(folder: Path) -> CTRModel:
    if not (folder / MODEL_CONFIG).is_file():
        raise DataError(f"{folder}: no {MODEL_CONFIG}; not a saved model folder")
    meta = json.loads((folder / MODEL_CONFIG).read_text())
    model = build_model(meta["model"], FeatureSpec.from_dict(meta["spec"]), ModelConfig(**meta["config"]))
    missing, unexpected = model.load_state_dict(read_safetensors(folder / MODEL_WEIGHTS), strict=False)
    if unexpected or [k for k in missing if ".adapter." not in f".{k}"]:
        raise DataError(f"{folder / MODEL_WEIGHTS}: weights do not match the model (missing {missing}, unexpected {unexpected})")
    return model
