"""Adapter files: the small weights (adapter.safetensors) beside a versioned config (adapter.json).

Kept apart from the backbone's weights, so an adapter can be loaded onto the backbone it was trained
with (as PEFT does for LoRA).
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from moe_mlora.adapters.config import AdapterConfig, AdapterMode
from moe_mlora.adapters.layer import adapters_of, attach_adapters, set_adapter_mode, TowerAdapter
from moe_mlora.errors import ConfigError, DataError
from moe_mlora.files import read_safetensors, write_weights

ADAPTER_WEIGHTS, ADAPTER_CONFIG = "adapter.safetensors", "adapter.json"
ADAPTER_FORMAT = 2  # 2: the gate has a per-domain prior and an optional feature input


def save_adapters(model: nn.Module, folder: Path, backbone_sha256: str | None = None) -> None:
    """Adapters and gates only (small files), loadable onto the same backbone with load_adapters.
    `backbone_sha256` names the backbone weights they were trained with (load_adapters checks it)."""
    adapters = adapters_of(model)
    if not adapters:
        raise ConfigError("the model carries no adapter to save")
    state = {f"{index}.{key}": value for index, adapter in enumerate(adapters) for key, value in adapter.state_dict().items()}
    write_weights(folder, ADAPTER_WEIGHTS, state, ADAPTER_CONFIG,
                  {"format": ADAPTER_FORMAT, "config": adapters[0].config.to_dict(), "towers": len(adapters),
                   "mode": adapters[0].mode.value, "backbone_sha256": backbone_sha256})


def load_adapters(model: nn.Module, folder: Path, backbone_sha256: str | None = None) -> list[TowerAdapter]:
    """Attach the saved adapters (in their saved mode). With `backbone_sha256` (the model's, from
    moe_mlora.training.checkpoint.backbone_sha256), adapters saved for other backbone weights are refused."""
    if not (folder / ADAPTER_CONFIG).is_file():
        raise DataError(f"{folder}: no {ADAPTER_CONFIG}; not a saved adapter folder")
    meta = json.loads((folder / ADAPTER_CONFIG).read_text())
    if meta.get("format", 1) > ADAPTER_FORMAT:
        raise DataError(f"{folder / ADAPTER_CONFIG}: format {meta['format']} is newer than this library reads")
    trained_on = meta.get("backbone_sha256")
    if backbone_sha256 and trained_on and trained_on != backbone_sha256:
        raise DataError(f"{folder / ADAPTER_CONFIG}: these adapters were trained on backbone {trained_on[:12]}, "
                        f"not on the one given ({backbone_sha256[:12]}); load them onto their own backbone")
    adapters = attach_adapters(model, AdapterConfig(**meta["config"]))
    if len(adapters) != meta["towers"]:
        raise DataError(f"{folder}: saved for {meta['towers']} tower(s), the model has {len(adapters)}")
    state = read_safetensors(folder / ADAPTER_WEIGHTS)
    for index, adapter in enumerate(adapters):
        try:
            adapter.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items() if k.split(".", 1)[0] == str(index)})
        except RuntimeError as exc:
            raise DataError(f"{folder / ADAPTER_WEIGHTS}: does not fit this backbone's tower ({exc})") from None
    if "mode" in meta:
        set_adapter_mode(model, AdapterMode(meta["mode"]))
    return adapters
