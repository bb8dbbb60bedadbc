"""A setting: a field of a config dataclass that carries its own help text and says whether it is part of a
run's identity. The command line builds its options from these fields (moe_mlora.cli.options) and a run's
key from their values (moe_mlora.run_config), so a new setting is one field in one dataclass.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from moe_mlora.errors import ConfigError

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


@lru_cache(maxsize=None)
def hints_of(kind: type) -> dict:
    return typing.get_type_hints(kind)


def check_type(value, hint, where: str) -> None:
    """A config file's value against its dataclass field's annotation: a one-line error naming the key, with
    no silent coercion (true is not a number, "0.01" is not a float, 2.5 is not a whole number)."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return
        errors = []
        for option in (a for a in arguments if a is not type(None)):
            try:
                return check_type(value, option, where)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        for item in value:
            check_type(item, arguments[0], where)
        return
    expected = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(hint)
    if expected is None:
        return
    if isinstance(value, bool) and hint is not bool or not isinstance(value, expected):
        what = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}[hint]
        raise ConfigError(f"{where} must be {what}, got {value!r}")
