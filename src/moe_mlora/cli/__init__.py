"""Command line: thin wrappers over the library; every user-facing error is one line, not a traceback.

One concern per module: app (the Typer apps, the options several commands share, one-line errors), options (a
config dataclass's fields as options), data, train, reproduce (sweeps and reports), serve (predict, export,
add-domain). Importing the package registers every command on `app`, the `moe-mlora` entry point.
"""

from __future__ import annotations

# Each module registers its commands when imported, in this order (the order of `moe-mlora --help`).
from moe_mlora.cli import train  # noqa: F401,I001
from moe_mlora.cli import data, reproduce, serve  # noqa: F401
from moe_mlora.cli.app import app
from moe_mlora.cli.train import default_threads

__all__ = ["app", "default_threads"]
