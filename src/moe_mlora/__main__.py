"""`python -m moe_mlora ...` (and `torchrun ... -m moe_mlora train ...`): the command line."""

from moe_mlora.cli import app

app()
