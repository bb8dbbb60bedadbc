"""Files written whole or not at all: a temporary file of its own beside the target, then an atomic replace.

Two writers of the same file never collide (each has its own temporary name), a killed process never
leaves half a file, and the result gets the usual permissions (0666 less the umask), not mkstemp's 0600.
"""

from __future__ import annotations

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


def probe_writable(folder: Path) -> None:
    """Create `folder` and check a file can be written there, so a run fails before its training, not after."""
    from moe_mlora.errors import ConfigError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe.", suffix=".tmp"):
            pass
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot write there ({exc.strerror or exc})") from None
