"""Command-line options built from the config dataclasses' settings (moe_mlora.settings), so a new setting is
one field: `train` and the sweeps get its option, with its help, type and default, without a line here.

A command declares its own options (paths, worker counts) as usual and adds `config_options: Settings` to
take the config's: `@with_settings(("train", TrainConfig), exclude=...)` puts one option per setting of those
dataclasses into the command's signature, and hands the command the values, each with its section and
whether the command line gave it.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from dataclasses import dataclass, fields
from typing import Annotated, Any, Optional

import typer

from moe_mlora.errors import ConfigError
from moe_mlora.settings import default_of, help_of

CONTEXT = "_settings_context"  # the context parameter added to a command that has none of its own
Section = tuple[str, type]  # (the config's section, its dataclass); section "" is RunConfig's own (model)
METHOD_SECTION = "method:"  # a section "method:NAME" holds a method's own settings: options --NAME-SETTING


def option_name(section: str, field_name: str) -> str:
    """The parameter (hence --option) name of a setting: its field's name, prefixed by the method's for a
    method's own settings (mmoe's experts: mmoe_experts, --mmoe-experts)."""
    if section.startswith(METHOD_SECTION):
        return f"{section.removeprefix(METHOD_SECTION).replace('-', '_')}_{field_name}"
    return field_name


def field_of(section: str, name: str) -> str:
    """The inverse of option_name."""
    if section.startswith(METHOD_SECTION):
        return name.removeprefix(f"{section.removeprefix(METHOD_SECTION).replace('-', '_')}_")
    return name


@dataclass(frozen=True)
class Settings:
    """What the command line said for each setting option: value, section, and whether it was given."""

    values: dict[str, Any]
    sections: dict[str, str]
    given: frozenset[str]

    def of(self, section: str) -> dict[str, Any]:
        """Every option's value for one section (defaults included)."""
        return {name: value for name, value in self.values.items() if self.sections[name] == section}

    def given_of(self, section: str) -> dict[str, Any]:
        """The options of one section that the command line gave (defaults left out)."""
        return {name: value for name, value in self.of(section).items() if name in self.given}


def _listed(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _whole_numbers(text: str) -> list[int]:
    try:
        return [int(item) for item in _listed(text)]
    except ValueError:
        raise ConfigError(f"'{text}' must be comma-separated whole numbers, e.g. 64,32") from None


def _option_type(hint) -> tuple[Any, Any]:
    """The type typer parses an option as, and how its text becomes the setting's value."""
    if typing.get_origin(hint) is tuple:  # e.g. features: "user_id,item_id"; widths: "64,32"
        return str, _whole_numbers if typing.get_args(hint)[0] is int else _listed
    arguments = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in arguments:
        (inner,) = [a for a in arguments if a is not type(None)]
        return Optional[inner], None
    return hint, None


def with_settings(*sections: Section, exclude: tuple[str, ...] = (), replace: dict[str, tuple] | None = None):
    """Add an option for every setting of `sections` (but `exclude`) to the command; `replace` maps a name to
    (type, default, help) where one command means something else by it (e.g. `train`'s --threads)."""
    replace = replace or {}

    def decorate(command):
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "config_options"]
        added, section_of, converters = [], {}, {}
        for section, kind in sections:
            hints = typing.get_type_hints(kind)
            for spec in fields(kind):
                text = help_of(spec)
                if text is None or spec.name in exclude:
                    continue
                name = option_name(section, spec.name)
                kind_of_option, converters[name] = _option_type(hints[spec.name])
                default = default_of(spec)
                if converters[name] in (_listed, _whole_numbers):
                    default = ",".join(map(str, default))
                if spec.name in replace:
                    kind_of_option, default, text = replace[spec.name]
                added.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                               annotation=Annotated[kind_of_option, typer.Option(help=text)]))
                section_of[name] = section

        contexts = [p.name for p in own if p.annotation is typer.Context]
        if not contexts:  # typer hands a parameter annotated typer.Context the command's context
            own.insert(0, inspect.Parameter(CONTEXT, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context))
        context_name = contexts[0] if contexts else CONTEXT

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            context = kwargs[context_name] if contexts else kwargs.pop(CONTEXT)
            values = {}
            for name in section_of:
                value = kwargs.pop(name)
                values[name] = converters[name](value) if converters[name] and value is not None else value
            given = frozenset(name for name in section_of if context is not None and _given(context, name))
            return command(*args, **kwargs, config_options=Settings(values, section_of, given))

        first = [p for p in own if p.default is inspect.Parameter.empty]  # e.g. the typer.Context
        rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p.default is not inspect.Parameter.empty]
        wrapper.__signature__ = inspect.Signature([*first, *added, *rest])  # the config's options first in --help
        return wrapper

    return decorate


def _given(context: typer.Context, name: str) -> bool:
    source = context.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
