"""The Typer apps, the options several commands share, and one-line user errors."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from moe_mlora.errors import ConfigError, MoeMloraError
from moe_mlora.experiments.sweep import SweepInterrupted

# Help texts are plain text: rich markup would eat "[ray]" in "pip install 'moe-mlora[ray]'".
app = typer.Typer(help="Multi-domain CTR prediction: Base, MLoRA and MoE-MLoRA on eight CTR backbones.",
                  no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None)
data_app = typer.Typer(help="Prepare datasets and inspect them.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(data_app, name="data")
reproduce_app = typer.Typer(help="Reproduce the paper's experiments (resumable sweeps).", no_args_is_help=True,
                            rich_markup_mode=None)
app.add_typer(reproduce_app, name="reproduce")
console = Console(soft_wrap=True, markup=False)  # printed text is data (paths, names), never markup
DataDirOption = Annotated[Optional[Path], typer.Option(help="Raw data folder (else $MOE_MLORA_DATA_DIR, else ~/.cache/moe-mlora/data).")]
SplitByOption = Annotated[Optional[str], typer.Option("--split-by", help="Domain field: gender|age|occupation (MovieLens), theme (Taobao), or the table's domain column.")]
FeaturesOption = Annotated[str, typer.Option(help="Comma-separated categorical features; the domain id is added as a feature.")]
ReproduceConfigOption = Annotated[Optional[Path], typer.Option("--config", help="A YAML/JSON config whose data (e.g. your own table), model_config and train sections replace the grid's defaults; training options given on the command line override its train section.")]


def user_errors(command):
    """Turn the library's user-facing errors into one line on stderr and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SweepInterrupted as exc:
            Console(stderr=True).print(f"[bold yellow]stopped:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
        except MoeMloraError as exc:
            Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s")


def choice(value: str, kind, option: str) -> None:
    allowed = [member.value for member in kind]
    if value not in allowed:
        raise ConfigError(f"{option} must be one of {', '.join(allowed)}, got '{value}'")


def maybe(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)
