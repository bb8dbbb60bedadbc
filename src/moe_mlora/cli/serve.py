"""`moe-mlora predict | export | add-domain`: serving a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from moe_mlora.cli.app import app, choice, console, maybe, user_errors
from moe_mlora.serving import Predictor, read_manifest, UnknownDomain, VOCABULARY_FILE
from moe_mlora.serving.add_domain import add_domain
from moe_mlora.serving.export import export_run

@app.command()
@user_errors
def predict(
    run: Annotated[Path, typer.Argument(help="A run folder (from train or reproduce).")],
    input: Annotated[Path, typer.Option("--input", help="Rows to score: CSV, TSV or Parquet with the run's feature and domain columns.")],
    output: Annotated[Path, typer.Option("--output", help="Where to write the scores (.csv or .parquet): the domain column and the probability, in input order.")],
    unknown_domain: Annotated[str, typer.Option(help="error (stop at a domain the run was not trained on) | backbone (score such rows with the backbone alone).")] = "error",
    chunk_rows: Annotated[int, typer.Option(help="Rows read, scored and written at a time (bounds the memory).")] = 100_000,
    device: Annotated[str, typer.Option(help="cpu, cuda, ...")] = "cpu",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Score new rows with a trained run: one click probability per input row."""
    choice(unknown_domain, UnknownDomain, "--unknown-domain")
    rows = Predictor.from_run(run, device=device).predict_file(input, output, unknown_domain=unknown_domain,
                                                               chunk_rows=chunk_rows, progress=progress)
    console.print(f"scored {rows:,} rows into {output}", highlight=False)


@app.command()
@user_errors
def export(
    run: Annotated[Path, typer.Argument(help="A run folder (from train or reproduce).")],
    format: Annotated[str, typer.Option("--format", help="onnx (pip install 'moe-mlora[onnx]') | torch-export (.pt2).")] = "onnx",
    domain: Annotated[Optional[str], typer.Option(help="Merge this domain's experts into a plain graph for its rows alone (default: one graph for all domains).")] = None,
    output: Annotated[Optional[Path], typer.Option(help="The graph file (default: RUN/export/model[-DOMAIN].onnx|.pt2).")] = None,
) -> None:
    """Export a run as a serving graph: (codes, domain ids) -> probabilities, dynamic batch size."""
    path = export_run(run, format, domain, output)
    spec = read_manifest(run).feature_spec
    extra = (f", dense float32 [batch, {spec.n_dense}], bags int64 [batch, {spec.n_bags}, length] (-1 pads)"
             if spec.n_dense or spec.n_bags else "")
    console.print(f"wrote {path} (inputs: codes int64 [batch, {spec.n_fields}] from {run / VOCABULARY_FILE}, "
                  f"domains int64 [batch]{extra}; output: probability)", highlight=False)


@app.command("add-domain")
@user_errors
def add_domain_command(
    run: Annotated[Path, typer.Argument(help="A run folder (from train or reproduce).")],
    table: Annotated[Path, typer.Option("--table", help="The new domain's rows: CSV, TSV or Parquet with the run's feature columns and a 0/1 label.")],
    domain: Annotated[str, typer.Option("--domain", help="The new domain's name.")],
    output: Annotated[Optional[Path], typer.Option(help="The new run folder (default: RUN+DOMAIN beside RUN).")] = None,
) -> None:
    """Add a domain to a trained run: only its new rows, experts and gate entry train; every other weight stays."""
    folder, report = add_domain(run, table, domain, output)
    view = Table(title=f"domain '{domain}' added: {report.rows['train']:,} training rows, best epoch "
                       f"{report.best_epoch} of {report.epochs}")
    for column in ("AUC on the new domain", "validation", "test"):
        view.add_column(column, justify="left" if column.startswith("AUC") else "right")
    view.add_row("source run's backbone alone", maybe(report.backbone_valid_auc, "{:.4f}"),
                 maybe(report.backbone_test_auc, "{:.4f}"))
    view.add_row("with the added domain", maybe(report.valid_auc, "{:.4f}"), maybe(report.test_auc, "{:.4f}"))
    console.print(view)
    console.print(f"wrote {folder}", highlight=False)
