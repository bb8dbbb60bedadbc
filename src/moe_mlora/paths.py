"""Where datasets and caches live: an explicit argument, else an environment variable, else ~/.cache."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "MOE_MLORA_DATA_DIR"
CACHE_DIR_ENV = "MOE_MLORA_CACHE_DIR"
_HOME_CACHE = Path.home() / ".cache" / "moe-mlora"


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding raw datasets (ml-100k/, ml-1m/, taobao/ ...)."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    return _HOME_CACHE / "data"


def resolve_cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder for derived artefacts (encoded splits); kept apart so the data folder may be read-only."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    return _HOME_CACHE / "prepared"
