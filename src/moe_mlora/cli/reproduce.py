"""`moe-mlora reproduce ...` and `report`: the paper's grids as resumable sweeps, and the report of a results folder."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from moe_mlora.cli.app import app, console, DataDirOption, reproduce_app, ReproduceConfigOption, user_errors
from moe_mlora.cli.options import Settings, with_settings
from moe_mlora.errors import ConfigError
from moe_mlora.experiments.controlled import (
    controlled_configs, CONTROLLED_TRAINING, SETTINGS, TABLES_FOLDER, write_tables,
)
from moe_mlora.experiments.grids import (
    ablation_configs, ABLATION_MODELS, ABLATION_VARIANTS, available_table1_splits, check_models, expand_splits,
    experts_configs, grid_models, int_list, seed_list, table1_configs, with_config_file,
)
from moe_mlora.experiments.report import build_table1, load_records, table1_markdown, write_report
from moe_mlora.experiments.sweep import run_sweep
from moe_mlora.files import probe_writable
from moe_mlora.methods import METHODS
from moe_mlora.models.registry import PAPER_MODELS
from moe_mlora.run_config import load_config_file
from moe_mlora.settings import help_of, setting
from moe_mlora.training.approaches import split_arms
from moe_mlora.training.config import TrainConfig

SWEEP_OWNS = ("seed", "progress", "device")  # a sweep sets each run's seed, shows no bars, runs on the CPU
ModelsOption = Annotated[Optional[str], typer.Option(help="Comma-separated backbones (default: the config file's model if it names one, else the grid's own).", show_default=False)]
MethodsOption = Annotated[Optional[str], typer.Option(help=f"Also run these registered methods as further arms, e.g. star,pepnet or with settings star[output=domain,normalisation=robust] (registered: {', '.join(METHODS)}), and base-without-domain (Base without the domain id among its fields).")]


@dataclass(frozen=True)
class SweepSettings:
    """The options every reproduce command shares, in one place (each command sets its own defaults for the
    seeds and the results folder): one help text each, and one way into `_sweep`."""

    seeds: int = setting(3, help="Number of training seeds (1..N); the data split stays seed 123.")
    results_dir: Path = setting(Path("results"), help="Where run records and the report go.")
    workers: int | None = setting(None, help="Parallel worker processes (default: cores // --threads).")
    backend: str = setting("process", help="process (this machine) | ray (a Ray cluster; pip install 'moe-mlora[ray]').")
    retry_failed: bool = setting(False, help="Run again the runs recorded as failed.")


def sweep_options(results_dir: str, seeds: int = 3):
    """A reproduce command's settings: the training options a sweep does not set itself, and the sweep's own
    with this command's defaults."""
    helps = {spec.name: help_of(spec) for spec in fields(SweepSettings)}
    return with_settings(("train", TrainConfig), ("sweep", SweepSettings), exclude=SWEEP_OWNS,
                         replace={"results_dir": (Path, Path(results_dir), helps["results_dir"]),
                                  "seeds": (int, seeds, helps["seeds"])})


def _split_list(text: str | None, data_dir: Path | None) -> list[str]:
    if not text:
        return available_table1_splits(data_dir)
    return expand_splits([item.strip() for item in text.split(",") if item.strip()])


def _sweep(configs, options: Settings, data_dir: Path | None, config_file: Path | None = None) -> None:
    """Run a grid (on a config file's data, model_config and train settings, if given, under the training
    options given on the command line; resumable), then print Table 1 and write the report."""
    sweep = SweepSettings(**options.of("sweep"))
    results_dir = sweep.results_dir
    if config_file:
        configs = with_config_file(configs, load_config_file(config_file), str(config_file),
                                   train_overrides=options.given_of("train"))
    summary = run_sweep(configs, results_dir, workers=sweep.workers, backend=sweep.backend,
                        retry_failed=sweep.retry_failed, data_dir=data_dir, console=console)
    console.print(f"sweep: {summary.finished} finished, {summary.skipped} already recorded, "
                  f"{len(summary.failed)} failed, {summary.seconds / 60:.1f} min", highlight=False)
    written = write_report(results_dir)
    records = load_records(results_dir)
    if not records[(records.status == "ok") & (records.k == 1)].empty:
        console.print(table1_markdown(build_table1(records)), highlight=False, markup=False)
    console.print("wrote " + ", ".join(str(p) for p in written.values()), highlight=False)
    if summary.failed:
        raise typer.Exit(1)


@reproduce_app.command("table1")
@user_errors
@sweep_options("results/table1")
def reproduce_table1(
    config_options: Settings,
    datasets: Annotated[Optional[str], typer.Option(help="Splits, e.g. movielens-100k:occupation,taobao:20 "
                                                         "(a bare name means all its splits; default: all available).")] = None,
    models: ModelsOption = None,
    config_file: ReproduceConfigOption = None,
    moe_variant: Annotated[Optional[str], typer.Option(help="Also run this MoE-MLoRA variant as a fourth arm, e.g. gate-init=own-domain,gate-lr=0.01 or authors-code.")] = None,
    methods: MethodsOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Table 1: Base / MLoRA / MoE-MLoRA (and any other methods) x models x splits, resumable; prints the table
    and writes the report."""
    train = TrainConfig(**config_options.of("train"), progress=False)
    configs = table1_configs(_split_list(datasets, data_dir), grid_models(models, config_file, PAPER_MODELS),
                             seed_list(config_options.of("sweep")["seeds"]), train,
                             moe_variants=[moe_variant] if moe_variant else [], methods=split_arms(methods))
    _sweep(configs, config_options, data_dir, config_file)


@reproduce_app.command("experts")
@user_errors
@sweep_options("results/experts")
def reproduce_experts(
    config_options: Settings,
    split: Annotated[str, typer.Option(help="The split (the paper: MovieLens by gender).")] = "movielens-100k:gender",
    models: ModelsOption = None,
    experts_per_domain: Annotated[str, typer.Option(help="Values of k (experts per domain).")] = "1,2,3,4",
    config_file: ReproduceConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Figure 2: MoE-MLoRA WAUC vs total experts (k = 1..4 per domain), resumable; writes figure2.png."""
    train = TrainConfig(**config_options.of("train"), progress=False)
    configs = experts_configs(split, grid_models(models, config_file, PAPER_MODELS),
                              seed_list(config_options.of("sweep")["seeds"]),
                              int_list(experts_per_domain, "--experts-per-domain"), train)
    _sweep(configs, config_options, data_dir, config_file)


@reproduce_app.command("ablation")
@user_errors
@sweep_options("results/ablation")
def reproduce_ablation(
    config_options: Settings,
    datasets: Annotated[str, typer.Option(help="Splits (a bare name means all its splits).")] = "movielens-100k",
    models: ModelsOption = None,
    variants: Annotated[str, typer.Option(help="MoE-MLoRA variants, separated by ';'.")] = ";".join(ABLATION_VARIANTS),
    config_file: ReproduceConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The ablation: Base, MoE-MLoRA and its variants (gate start, gate learning rate, feature gate, the
    authors' schedule) x models x splits, resumable; the report ranks the variants by validation WAUC."""
    train = TrainConfig(**config_options.of("train"), progress=False)
    configs = ablation_configs(_split_list(datasets, data_dir), grid_models(models, config_file, ABLATION_MODELS),
                               seed_list(config_options.of("sweep")["seeds"]), train,
                               [v.strip() for v in variants.split(";") if v.strip()])
    _sweep(configs, config_options, data_dir, config_file)


@reproduce_app.command("controlled")
@user_errors
@sweep_options("results/controlled", seeds=5)
def reproduce_controlled(
    config_options: Settings,
    models: ModelsOption = None,
    settings: Annotated[str, typer.Option(help="Knob settings by name (default: all of moe_mlora.experiments.controlled.SETTINGS).")] = "",
    methods: MethodsOption = None,
) -> None:
    """When do domain adapters help? Base / MLoRA / MoE-MLoRA on controlled tables from no domain signal to
    strong; the report maps each method's gain over Base against the oracle gap. Trains with batches of 256 and
    at least 10 epochs a phase unless --batch-size / --min-epochs say otherwise
    (moe_mlora.experiments.controlled.CONTROLLED_TRAINING)."""
    chosen = [name.strip() for name in settings.split(",") if name.strip()] or list(SETTINGS)
    unknown = [name for name in chosen if name not in SETTINGS]
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}; choose from {', '.join(SETTINGS)}")
    results_dir = config_options.of("sweep")["results_dir"]
    probe_writable(results_dir)
    tables = write_tables({name: SETTINGS[name] for name in chosen}, results_dir / TABLES_FOLDER)
    defaults = dict(CONTROLLED_TRAINING)
    defaults["min_epochs"] = min(defaults["min_epochs"], config_options.of("train")["max_epochs"])  # a short try
    train = TrainConfig(**{**config_options.of("train"), **defaults, **config_options.given_of("train")},
                        progress=False)
    configs = controlled_configs(tables, check_models(grid_models(models, None, ("deepfm", "dcn"))),
                                 seed_list(config_options.of("sweep")["seeds"]), train, methods=split_arms(methods))
    _sweep(configs, config_options, None)


@app.command()
@user_errors
def report(
    results_dir: Annotated[Path, typer.Argument(help="A folder of run records (from reproduce or train --runs-dir).")],
    out: Annotated[Optional[Path], typer.Option(help="Where to write the report (default: results_dir).")] = None,
    published: Annotated[Optional[str], typer.Option(help="Also set the runs beside a published table: scenario-wise-ml1m (Scenario-Wise Rec's ML-1M benchmark; examples/scenario-wise-ml1m.yaml).")] = None,
) -> None:
    """Table 1 in the paper's layout (mean ± 95% CI, Δ, Avg(Δ), paired tests), Figure 2, and the paper beside ours."""
    if not results_dir.is_dir():
        raise typer.BadParameter(f"{results_dir} is not a folder")
    try:
        written = write_report(results_dir, out, published=published)
    except FileNotFoundError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    records = load_records(results_dir)
    if not records[(records.status == "ok") & (records.k == 1)].empty:
        console.print(table1_markdown(build_table1(records)), highlight=False, markup=False)
    console.print("wrote " + ", ".join(str(p) for p in written.values()), highlight=False)
