"""Command line: thin wrappers over the library; every user-facing error is one line, not a traceback."""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from moe_mlora.data import DatasetConfig, load_interactions
from moe_mlora.data.stats import domain_statistics, stats_as_records
from moe_mlora.errors import MoeMloraError

app = typer.Typer(help="Multi-domain CTR prediction: Base, MLoRA and MoE-MLoRA on eight CTR backbones.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Prepare datasets and inspect them.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()

DataDirOption = Annotated[Optional[Path], typer.Option(help="Raw data folder (else $MOE_MLORA_DATA_DIR, else ~/.cache/moe-mlora/data).")]
SplitByOption = Annotated[Optional[str], typer.Option("--split-by", help="Domain field: gender|age|occupation (MovieLens), theme (Taobao), or the table's domain column.")]
FeaturesOption = Annotated[str, typer.Option(help="Comma-separated categorical features; the domain id is added as a feature.")]


def user_errors(command):
    """Turn the library's user-facing errors into one line on stderr and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except MoeMloraError as exc:
            Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def dataset_config(
    dataset: str, split_by: str | None, features: str, n_themes: int, table_path: Path | None, label_column: str
) -> DatasetConfig:
    return DatasetConfig(
        dataset=dataset, split_by=split_by, features=tuple(f.strip() for f in features.split(",") if f.strip()),
        n_themes=n_themes, table_path=str(table_path) if table_path else None, label_column=label_column,
    )


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s")


@data_app.command("stats")
@user_errors
def data_stats(
    dataset: Annotated[str, typer.Argument(help="movielens-100k | movielens-1m | taobao | taobao-synthetic | table")],
    split_by: SplitByOption = None,
    features: FeaturesOption = "user_id,item_id",
    n_themes: Annotated[int, typer.Option(help="Taobao: number of themes (domains).")] = 10,
    table_path: Annotated[Optional[Path], typer.Option(help="dataset 'table': a CSV or Parquet file.")] = None,
    label_column: Annotated[str, typer.Option(help="dataset 'table': the 0/1 label column.")] = "label",
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Rows, users, items, positive rate and sparsity per domain and overall."""
    config = dataset_config(dataset, split_by, features, n_themes, table_path, label_column)
    table = load_interactions(config, data_dir)
    stats = domain_statistics(table)
    if as_json:
        print(json.dumps({"dataset": table.display_name, "synthetic": table.synthetic, "split_by": table.domain_field,
                          "domains": stats_as_records(stats), "notes": table.notes}, indent=2))
        return
    view = Table(title=f"{table.display_name} split by {table.domain_field}: {table.n_domains} domains")
    for column in ("domain", "rows", "users", "items", "positive rate", "sparsity"):
        view.add_column(column, justify="left" if column == "domain" else "right")
    for entry in stats:
        view.add_row(
            entry.domain, f"{entry.rows:,}", _maybe(entry.users, "{:,}"), _maybe(entry.items, "{:,}"),
            f"{entry.positive_rate:.4f}", _maybe(entry.sparsity, "{:.4f}"), end_section=entry.domain == stats[-2].domain,
        )
    console.print(view)
    for note in table.notes:
        console.print(f"note: {note}", highlight=False)


def _maybe(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
