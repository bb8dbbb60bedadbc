"""Files written whole or not at all: a temporary file of its own beside the target, then an atomic replace.

Two writers of the same file never collide (each has its own temporary name), a killed process never
leaves half a file, and the result gets the usual permissions (0666 less the umask), not mkstemp's 0600.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """`with atomic_path(p) as tmp: write tmp` -> p holds what was written, or is untouched on error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return path
