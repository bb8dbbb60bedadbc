"""`moe-mlora data stats | generate`: a dataset's domains, and controlled tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from moe_mlora.cli.app import console, data_app, DataDirOption, FeaturesOption, maybe, SplitByOption, user_errors
from moe_mlora.cli.options import Settings, with_settings
from moe_mlora.data import DatasetConfig, load_interactions
from moe_mlora.data.controlled import ControlledConfig, TABLE_FILE, write_controlled
from moe_mlora.data.prepare import table_notes
from moe_mlora.data.stats import domain_statistics, stats_as_records
from moe_mlora.files import probe_writable

def dataset_config(
    dataset: str, split_by: str | None, features: str, n_themes: int, table_path: Path | None, label_column: str,
    min_count: int | None = None,
) -> DatasetConfig:
    return DatasetConfig(
        dataset=dataset, split_by=split_by, features=tuple(f.strip() for f in features.split(",") if f.strip()),
        n_themes=n_themes, table_path=str(table_path) if table_path else None, label_column=label_column,
        min_count=min_count,
    )


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
    notes = table_notes(table, config)
    if as_json:
        print(json.dumps({"dataset": table.display_name, "synthetic": table.synthetic, "split_by": table.domain_field,
                          "domains": stats_as_records(stats), "notes": notes}, indent=2))
        return
    view = Table(title=f"{table.display_name} split by {table.domain_field}: {table.n_domains} domains")
    for column in ("domain", "rows", "users", "items", "positive rate", "sparsity"):
        view.add_column(column, justify="left" if column == "domain" else "right")
    for entry in stats:
        view.add_row(
            entry.domain, f"{entry.rows:,}", maybe(entry.users, "{:,}"), maybe(entry.items, "{:,}"),
            f"{entry.positive_rate:.4f}", maybe(entry.sparsity, "{:.4f}"), end_section=entry.domain == stats[-2].domain,
        )
    console.print(view)
    for note in notes:
        console.print(f"note: {note}", highlight=False)


@data_app.command("generate")
@user_errors
@with_settings(("generator", ControlledConfig))
def data_generate(
    config_options: Settings,
    out: Annotated[Path, typer.Option("--out", help="The folder for table.parquet, truth.json and factors.npz.")],
) -> None:
    """A controlled multi-domain table with a known truth and its oracle gap (moe_mlora.data.controlled)."""
    config = ControlledConfig(**config_options.of("generator"))
    probe_writable(out)
    summary = write_controlled(config, out)
    console.print(f"wrote {out / TABLE_FILE} ({config.rows:,} rows, {summary['users']:,} users, {summary['items']:,} "
                  f"items, {config.n_domains} domains); oracle gap {summary['oracle_gap']:+.4f} test WAUC (per-domain oracle "
                  f"{summary['per_domain_oracle_wauc']:.4f}, domain-blind {summary['shared_oracle_wauc']:.4f}); train with: "
                  f"moe-mlora train --dataset table --table-path {out / TABLE_FILE} --split-by domain "
                  "--features user,item", highlight=False)
