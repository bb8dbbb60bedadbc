"""`moe-mlora` with a ninth backbone registered: one class and one registry line, as a user's plugin would.

Sweep workers are spawned processes that import this script as their main module, so they know the
backbone too.
"""

import sys

from moe_mlora.models import MODELS
from moe_mlora.models.wdl import WDL


class Ninth(WDL):
    """A stand-in for a backbone the paper does not have (WDL's structure under another name)."""

    name = "ninth"


MODELS["ninth"] = Ninth

if __name__ == "__main__":
    from moe_mlora.cli import app

    sys.exit(app())
