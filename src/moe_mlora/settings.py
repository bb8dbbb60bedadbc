"""A setting: a field of a config dataclass that carries its own help text and says whether it is part of a
run's identity. The command line builds its options from these fields (moe_mlora.cli_options) and a run's
key from their values (moe_mlora.experiments.config), so a new setting is one field in one dataclass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

HELP, IDENTITY = "help", "identity"


def setting(default: Any = dataclasses.MISSING, *, help: str | Callable[[], str], identity: bool = True,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with its command-line help. `identity=False`: the value cannot change a run's
    numbers (progress bars, the device), so it is left out of the run's key. `help` may be a function, for
    text that lists what is registered when the options are built."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={HELP: help, IDENTITY: identity})


def help_of(field: dataclasses.Field) -> str | None:
    """The field's help text, or None for a field that is not a command-line setting."""
    text = field.metadata.get(HELP)
    return text() if callable(text) else text


def in_identity(field: dataclasses.Field) -> bool:
    return field.metadata.get(IDENTITY, True)


def default_of(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING
