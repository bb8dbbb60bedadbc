"""A method's saved form: its parts' weights (method.safetensors) beside a versioned config (method.json).

The parts are rebuilt by the method's own `attach` from the run's config, then their tensors are loaded
strictly, so a file that does not fit the method is refused in one line. (MLoRA and MoE-MLoRA keep their
adapter files, moe_mlora.adapters.io, which carry the adapter config and mode.)
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from moe_mlora.errors import DataError
from moe_mlora.files import read_safetensors, read_versioned_json, write_weights
from moe_mlora.layers.domain_part import part_state_keys
from moe_mlora.methods.registry import get_method

METHOD_WEIGHTS, METHOD_CONFIG = "method.safetensors", "method.json"
METHOD_FORMAT = 1


def save_method_parts(model: nn.Module, folder: Path, method: str, backbone_sha256: str) -> None:
    state = model.state_dict()
    write_weights(folder, METHOD_WEIGHTS, {key: state[key] for key in sorted(part_state_keys(model))}, METHOD_CONFIG,
                  {"format": METHOD_FORMAT, "method": method, "backbone_sha256": backbone_sha256})


def load_method_parts(model: nn.Module, folder: Path, approach, n_domains: int, run_seed: int,
                      backbone_sha256: str) -> None:
    """Attach `approach`'s parts to `model` and load their saved tensors (the backbone is already loaded)."""
    path = folder / METHOD_CONFIG
    meta = read_versioned_json(path, METHOD_FORMAT, f"the run's method ({approach.approach}) has parts to load")
    if meta.get("method") != approach.approach:
        raise DataError(f"{path}: holds {meta.get('method')} parts, the run is {approach.approach}")
    if meta.get("backbone_sha256") != backbone_sha256:
        raise DataError(f"{path}: these parts were trained on another backbone than {folder}'s")
    get_method(approach.approach).plug_into(model, n_domains, run_seed, approach)
    saved, expected = read_safetensors(folder / METHOD_WEIGHTS), part_state_keys(model)
    if set(saved) != expected:
        raise DataError(f"{folder / METHOD_WEIGHTS}: does not fit the {approach.approach} parts of this model "
                        f"(missing {sorted(expected - set(saved))[:3]}, unexpected {sorted(set(saved) - expected)[:3]})")
    try:
        model.load_state_dict({**model.state_dict(), **saved}, strict=True)
    except RuntimeError as exc:
        raise DataError(f"{folder / METHOD_WEIGHTS}: does not fit this model ({str(exc).splitlines()[0]})") from None
