"""Files written whole or not at all: a temporary file of its own beside the target, then an atomic replace.

Two writers of the same file never collide (each has its own temporary name), a killed process never
leaves half a file, and the result gets the usual permissions (0666 less the umask), not mkstemp's 0600.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: Path, keep_suffix: bool = False) -> Iterator[Path]:
    """`with atomic_path(p) as tmp: write tmp` -> p holds what was written, or is untouched on error.
    `keep_suffix` ends the temporary name with p's suffix, for writers that insist on one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".tmp{path.suffix}" if keep_suffix else ".tmp"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def safe_name(text: str) -> str:
    """`text` as one file or folder name: every run of other characters than letters, digits, '.', '_'
    and '-' (a '/' above all) becomes one '_'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def write_text_atomic(path: Path, text: str) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return path


def probe_output_file(path: Path) -> None:
    """Check before the work that `path` can be written as a file: not a folder, in a writable folder."""
    from moe_mlora.errors import ConfigError

    if Path(path).is_dir():
        raise ConfigError(f"{path}: is a folder; name the output file")
    probe_writable(Path(path).parent)


def probe_writable(folder: Path) -> None:
    """Create `folder` and check a file can be written there, so a run fails before its training, not after."""
    from moe_mlora.errors import ConfigError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe.", suffix=".tmp"):
            pass
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot write there ({exc.strerror or exc})") from None


def write_weights(folder: Path, weights_file: str, tensors: dict, config_file: str, config: dict) -> None:
    """The one artefact writer (a backbone, a method's parts, LoRA adapters): the tensors as safetensors, then
    the JSON config that says how to read them, each written whole or not at all."""
    from safetensors.torch import save_file

    with atomic_path(folder / weights_file) as temporary:
        save_file({key: value.detach().cpu().contiguous() for key, value in tensors.items()}, str(temporary))
    write_text_atomic(folder / config_file, json.dumps(config, indent=2))


def read_safetensors(path: Path) -> dict:
    """The tensors of a .safetensors file; a missing, truncated or otherwise damaged file is a one-line
    DataError naming it (never safetensors' own traceback)."""
    from safetensors.torch import load_file

    from moe_mlora.errors import DataError

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise DataError(f"{path}: missing") from None
    except Exception as exc:  # noqa: BLE001 - SafetensorError and OSError alike mean the file cannot be used
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: damaged, not a readable safetensors file ({detail})") from None


def read_versioned_json(path: Path, newest: int, missing: str) -> dict:
    """A JSON file with a "format" number this library reads up to `newest`; absent (`missing` says what the
    folder then is not), unreadable or too new is a one-line DataError naming the file."""
    from moe_mlora.errors import DataError

    if not path.is_file():
        raise DataError(f"{path.parent}: no {path.name}; {missing}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a JSON object")
    if data.get("format", 0) > newest:
        raise DataError(f"{path}: format {data['format']} is newer than this library reads ({newest})")
    return data
