"""Command line: thin wrappers over the library; every user-facing error is one line, not a traceback."""

from __future__ import annotations

import os

import functools
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from moe_mlora.data import DatasetConfig, load_interactions
from moe_mlora.data.controlled import TABLE_FILE, ControlledConfig, write_controlled
from moe_mlora.data.prepare import table_notes
from moe_mlora.data.stats import domain_statistics, stats_as_records
from moe_mlora.cli_options import METHOD_SECTION, Settings, field_of, with_settings
from moe_mlora.errors import ConfigError, MoeMloraError
from moe_mlora.files import probe_writable
from moe_mlora.experiments.controlled import CONTROLLED_TRAINING, SETTINGS, TABLES_FOLDER, controlled_configs, write_tables
from moe_mlora.experiments.grids import (
    ABLATION_MODELS, ABLATION_VARIANTS, ablation_configs, available_table1_splits, check_models, expand_splits, experts_configs,
    grid_models, int_list,
    seed_list,
    table1_configs, with_config_file,
)
from moe_mlora.experiments.report import build_table1, load_records, table1_markdown, write_report
from moe_mlora.experiments.records import RESULT_FILE, RunRecord
from moe_mlora.run_config import load_config_file
from moe_mlora.experiments.run import RunConfig, execute_run
from moe_mlora.experiments.sweep import SweepInterrupted, run_sweep
from moe_mlora.training.config import available_cores
from moe_mlora.methods import METHODS
from moe_mlora.models.registry import PAPER_MODELS
from moe_mlora.serving import VOCABULARY_FILE, Predictor, UnknownDomain, read_manifest
from moe_mlora.serving.add_domain import add_domain
from moe_mlora.serving.export import export_run
from moe_mlora.training.approaches import ApproachConfig, split_arms
from moe_mlora.training.config import TrainConfig, resolve_device
from moe_mlora.training.distributed import is_main_process, process_group
from moe_mlora.training.loop import EpochRecord
from moe_mlora.training.metrics import SelectBy

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


def dataset_config(
    dataset: str, split_by: str | None, features: str, n_themes: int, table_path: Path | None, label_column: str,
    min_count: int | None = None,
) -> DatasetConfig:
    return DatasetConfig(
        dataset=dataset, split_by=split_by, features=tuple(f.strip() for f in features.split(",") if f.strip()),
        n_themes=n_themes, table_path=str(table_path) if table_path else None, label_column=label_column,
        min_count=min_count,
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
            entry.domain, f"{entry.rows:,}", _maybe(entry.users, "{:,}"), _maybe(entry.items, "{:,}"),
            f"{entry.positive_rate:.4f}", _maybe(entry.sparsity, "{:.4f}"), end_section=entry.domain == stats[-2].domain,
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


@app.command()
@user_errors
@with_settings(("", RunConfig), ("data", DatasetConfig), ("approach", ApproachConfig), ("train", TrainConfig),
               *[(METHOD_SECTION + name, method.settings) for name, method in METHODS.items() if method.settings],
               replace={"threads": (Optional[int], None, "CPU threads (default: the config file's, else every core "
                                    "this process may use, shared out among torchrun's processes). Part of a run's identity: "
                                    "the thread count changes the last digits of the results.")})
def train(
    context: typer.Context,
    config_options: Settings,
    runs_dir: Annotated[Path, typer.Option(help="Where run folders (weights, result.json) are written.")] = Path("runs"),
    data_dir: DataDirOption = None,
    config_file: Annotated[Optional[Path], typer.Option("--config", help="A YAML or JSON run config (sections data, model, model_config, approach, train; any subset), or a run's result.json to rerun it exactly. Options given on the command line override it.")] = None,
    log_dir: Annotated[Optional[Path], typer.Option(help="Also write TensorBoard event files here (pip install 'moe-mlora[tensorboard]').")] = None,
) -> None:
    """Train one backbone with one approach; print per-phase validation WAUC and the test table."""
    config = command_line_config(config_options, config_file)
    with process_group(resolve_device(config.train.device)):  # under torchrun: data-parallel, rank 0 reports
        _train(config, runs_dir, data_dir, log_dir)


def _train(config: RunConfig, runs_dir: Path, data_dir: Path | None, log_dir: Path | None) -> None:
    main = is_main_process()
    if not main:
        config = replace(config, train=replace(config.train, progress=False))
    metric = {SelectBy.WAUC.value: "WAUC", SelectBy.MEAN_AUC.value: "mean AUC", SelectBy.AUC.value: "AUC"}[config.train.select_by]

    def on_epoch(phase: str, record: EpochRecord) -> None:
        console.print(f"[{phase}] epoch {record.epoch:>2}  train loss {record.train_loss:.4f}  "
                      f"val {metric if 'expert' not in phase else 'expert ' + metric} {record.valid_score:.4f}  "
                      f"({record.rows_per_second:,.0f} rows/s)", highlight=False, markup=False)

    record = execute_run(config, runs_dir, data_dir=data_dir, on_epoch=on_epoch if main else None,
                         log_dir=log_dir if main else None)
    if main:
        print_result(record)
        console.print(f"wrote {config.run_dir(runs_dir) / RESULT_FILE}", highlight=False)


def default_threads() -> int:
    """One run on its own gets the cores it may use (its CPU affinity; shared out among torchrun's processes);
    sweeps keep one thread per worker."""
    processes = int(os.environ.get("WORLD_SIZE", "1") or 1)
    return max(1, available_cores() // max(1, processes))


def command_line_config(settings: Settings, config_file: Path | None) -> RunConfig:
    """The run config of `train`: the config file (if any), then every option given on the command line
    (without a file, every option, defaults included)."""
    data = load_config_file(config_file) if config_file else {}
    data = {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}
    method_options: dict[str, dict] = {}
    for name, value in settings.values.items():
        section = settings.sections[name]
        if name == "threads" and value is None:
            section_given = data.get("train")
            if section_given is not None and (not isinstance(section_given, dict) or "threads" in section_given):
                continue  # the config file's (or a bad section, which from_partial names)
            value = default_threads()  # not given anywhere: this machine's cores
        elif config_file and name not in settings.given:
            continue
        if section.startswith(METHOD_SECTION):  # a method's own setting: only where given
            if name in settings.given:
                method_options.setdefault(section.removeprefix(METHOD_SECTION), {})[field_of(section, name)] = value
        elif section == "":
            data[name] = value.lower() if name == "model" else value
        else:
            data.setdefault(section, {})[name] = value
    if method_options:
        approach = (data.get("approach") or {}).get("approach", "base") if isinstance(data.get("approach"), dict) else None
        other = [name for name in method_options if name != approach]
        if other:
            given = ", ".join(f"--{other[0]}-{key.replace('_', '-')}" for key in method_options[other[0]])
            raise ConfigError(f"{given} applies to --approach {other[0]}, not {approach}")
        section = data.setdefault("approach", {})
        section["method_settings"] = {**(section.get("method_settings") or {}), **method_options[approach]}
    return RunConfig.from_partial(data, str(config_file) if config_file else "command line")


def print_result(record: RunRecord) -> None:
    train = record.config.train
    phases = Table(title=f"{record.label}: phases (batch order {train.batch_order}, selection by {train.select_by})")
    for column in ("phase", "epochs", "chosen epoch", "val score at choice", "val score restored",
                   "trainable / total params", "seconds"):
        phases.add_column(column, justify="left" if column == "phase" else "right")
    for phase in record.phases:
        chosen = str(phase.best_epoch) if phase.granularity == "model" else f"per expert (≤ {phase.best_epoch})"
        phases.add_row(phase.phase, str(len(phase.history)), chosen, _maybe(phase.best_valid_score, "{:.4f}"),
                       _maybe(phase.restored_valid_score, "{:.4f}"),
                       f"{phase.trainable_parameters:,} / {phase.total_parameters:,}", f"{phase.seconds:.1f}")
    console.print(phases)
    for phase in record.phases:
        if phase.note:
            console.print(f"{phase.phase}: {phase.note}", highlight=False, markup=False)
        if phase.capped_groups:
            console.print(f"{phase.phase}: the epoch cap ({phase.epoch_cap}) ended it with {phase.capped_groups} "
                          "group(s) still improving", highlight=False, markup=False)
    test = record.test
    view = Table(title=f"test on {record.dataset}: WAUC {test.wauc:.4f}, logloss {test.logloss:.4f}")
    for column in ("domain", "rows", "positives", "AUC", "weight", "logloss"):
        view.add_column(column, justify="left" if column == "domain" else "right")
    for entry in test.domains:
        view.add_row(entry.domain, f"{entry.rows:,}", f"{entry.positives:,}", _maybe(entry.auc, "{:.4f}"),
                     f"{entry.weight:.3f}", _maybe(entry.logloss, "{:.4f}"))
    view.add_row("WAUC", f"{sum(e.rows for e in test.domains):,}", "", f"{test.wauc:.4f}", "1.000",
                 f"{test.logloss:.4f}", style="bold")
    console.print(view)
    if test.excluded:
        console.print(f"note: no AUC for {', '.join(test.excluded)} (one label class in the test rows); "
                      "excluded from WAUC, other weights renormalised", highlight=False)
    if record.diagnostics:
        print_diagnostics(record.diagnostics)


def print_diagnostics(diagnostics) -> None:
    gate = Table(title=f"gate per domain (uniform: own-expert weight {diagnostics.uniform_own_weight:.3f}, "
                       f"entropy {diagnostics.uniform_entropy:.3f} nats)")
    for column in ("domain", "weight on own experts", "entropy"):
        gate.add_column(column, justify="left" if column == "domain" else "right")
    for entry in diagnostics.gate:
        gate.add_row(entry.domain, f"{entry.own_weight:.3f}", f"{entry.entropy:.3f}")
    gate.add_row("mean", f"{diagnostics.mean_own_weight:.3f}", "", style="bold")
    console.print(gate)
    paths = Table(title="forward paths of the final model (WAUC)")
    for column in ("path", "validation", "test"):
        paths.add_column(column, justify="left" if column == "path" else "right")
    for name, scores in diagnostics.paths.items():
        paths.add_row(name, f"{scores['valid']:.4f}", f"{scores['test']:.4f}")
    console.print(paths)


SeedsOption = Annotated[int, typer.Option(help="Number of training seeds (1..N); the data split stays seed 123.")]
SWEEP_OWNS = ("seed", "progress", "device")  # a sweep sets each run's seed, shows no bars, runs on the CPU
WorkersOption = Annotated[Optional[int], typer.Option(help="Parallel worker processes (default: cores // --threads).")]
BackendOption = Annotated[str, typer.Option(help="process (this machine) | ray (a Ray cluster; pip install 'moe-mlora[ray]').")]
ModelsOption = Annotated[Optional[str], typer.Option(help="Comma-separated backbones (default: the config file's model if it names one, else the grid's own).", show_default=False)]
MethodsOption = Annotated[Optional[str], typer.Option(help=f"Also run these registered methods as further arms, e.g. star,pepnet or with settings star[output=domain,normalisation=robust] (registered: {', '.join(METHODS)}), and base-without-domain (Base without the domain id among its fields).")]


def _split_list(text: str | None, data_dir: Path | None) -> list[str]:
    if not text:
        return available_table1_splits(data_dir)
    return expand_splits([item.strip() for item in text.split(",") if item.strip()])


def _sweep(configs, results_dir: Path, workers, backend: str, retry_failed: bool, data_dir: Path | None,
           config_file: Path | None = None, settings: Settings | None = None) -> None:
    """Run a grid (on a config file's data, model_config and train settings, if given, under the training
    options given on the command line; resumable), then print Table 1 and write the report."""
    if config_file:
        given = {} if settings is None else settings.given_of("train")
        configs = with_config_file(configs, load_config_file(config_file), str(config_file), train_overrides=given)
    summary = run_sweep(configs, results_dir, workers=workers, backend=backend, retry_failed=retry_failed,
                        data_dir=data_dir, console=console)
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
@with_settings(("train", TrainConfig), exclude=SWEEP_OWNS)
def reproduce_table1(
    config_options: Settings,
    datasets: Annotated[Optional[str], typer.Option(help="Splits, e.g. movielens-100k:occupation,taobao:20 "
                                                         "(a bare name means all its splits; default: all available).")] = None,
    models: ModelsOption = None,
    seeds: SeedsOption = 3,
    results_dir: Annotated[Path, typer.Option(help="Where run records and the report go.")] = Path("results/table1"),
    workers: WorkersOption = None,
    backend: BackendOption = "process",
    config_file: ReproduceConfigOption = None,
    retry_failed: Annotated[bool, typer.Option(help="Run again the runs recorded as failed.")] = False,
    moe_variant: Annotated[Optional[str], typer.Option(help="Also run this MoE-MLoRA variant as a fourth arm, e.g. gate-init=own-domain,gate-lr=0.01 or authors-code.")] = None,
    methods: MethodsOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Table 1: Base / MLoRA / MoE-MLoRA (and any other methods) x models x splits, resumable; prints the table
    and writes the report."""
    train = TrainConfig(**config_options.of("train"), progress=False)
    configs = table1_configs(_split_list(datasets, data_dir), grid_models(models, config_file, PAPER_MODELS),
                             seed_list(seeds), train, moe_variants=[moe_variant] if moe_variant else [],
                             methods=split_arms(methods))
    _sweep(configs, results_dir, workers, backend, retry_failed, data_dir, config_file, config_options)


@reproduce_app.command("experts")
@user_errors
@with_settings(("train", TrainConfig), exclude=SWEEP_OWNS)
def reproduce_experts(
    config_options: Settings,
    split: Annotated[str, typer.Option(help="The split (the paper: MovieLens by gender).")] = "movielens-100k:gender",
    models: ModelsOption = None,
    experts_per_domain: Annotated[str, typer.Option(help="Values of k (experts per domain).")] = "1,2,3,4",
    seeds: SeedsOption = 3,
    results_dir: Annotated[Path, typer.Option(help="Where run records and the report go.")] = Path("results/experts"),
    workers: WorkersOption = None,
    backend: BackendOption = "process",
    config_file: ReproduceConfigOption = None,
    retry_failed: bool = False,
    data_dir: DataDirOption = None,
) -> None:
    """Figure 2: MoE-MLoRA WAUC vs total experts (k = 1..4 per domain), resumable; writes figure2.png."""
    train = TrainConfig(**config_options.of("train"), progress=False)
    configs = experts_configs(split, grid_models(models, config_file, PAPER_MODELS), seed_list(seeds),
                              int_list(experts_per_domain, "--experts-per-domain"), train)
    _sweep(configs, results_dir, workers, backend, retry_failed, data_dir, config_file, config_options)


@reproduce_app.command("ablation")
@user_errors
@with_settings(("train", TrainConfig), exclude=SWEEP_OWNS)
def reproduce_ablation(
    config_options: Settings,
    datasets: Annotated[str, typer.Option(help="Splits (a bare name means all its splits).")] = "movielens-100k",
    models: ModelsOption = None,
    variants: Annotated[str, typer.Option(help="MoE-MLoRA variants, separated by ';'.")] = ";".join(ABLATION_VARIANTS),
    seeds: SeedsOption = 3,
    results_dir: Annotated[Path, typer.Option(help="Where run records and the report go.")] = Path("results/ablation"),
    workers: WorkersOption = None,
    backend: BackendOption = "process",
    config_file: ReproduceConfigOption = None,
    retry_failed: bool = False,
    data_dir: DataDirOption = None,
) -> None:
    """The ablation: Base, MoE-MLoRA and its variants (gate start, gate learning rate, feature gate, the
    authors' schedule) x models x splits, resumable; the report ranks the variants by validation WAUC."""
    train = TrainConfig(**config_options.of("train"), progress=False)
    configs = ablation_configs(_split_list(datasets, data_dir), grid_models(models, config_file, ABLATION_MODELS),
                               seed_list(seeds), train, [v.strip() for v in variants.split(";") if v.strip()])
    _sweep(configs, results_dir, workers, backend, retry_failed, data_dir, config_file, config_options)


@reproduce_app.command("controlled")
@user_errors
@with_settings(("train", TrainConfig), exclude=SWEEP_OWNS)
def reproduce_controlled(
    config_options: Settings,
    models: ModelsOption = None,
    settings: Annotated[str, typer.Option(help="Knob settings by name (default: all of moe_mlora.experiments.controlled.SETTINGS).")] = "",
    seeds: SeedsOption = 5,
    results_dir: Annotated[Path, typer.Option(help="Where the tables, run records and the report go.")] = Path("results/controlled"),
    workers: WorkersOption = None,
    backend: BackendOption = "process",
    retry_failed: bool = False,
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
    probe_writable(results_dir)
    tables = write_tables({name: SETTINGS[name] for name in chosen}, results_dir / TABLES_FOLDER)
    defaults = dict(CONTROLLED_TRAINING)
    defaults["min_epochs"] = min(defaults["min_epochs"], config_options.of("train")["max_epochs"])  # a short try
    train = TrainConfig(**{**config_options.of("train"), **defaults, **config_options.given_of("train")},
                        progress=False)
    configs = controlled_configs(tables, check_models(grid_models(models, None, ("deepfm", "dcn"))), seed_list(seeds), train,
                                 methods=split_arms(methods))
    _sweep(configs, results_dir, workers, backend, retry_failed, None)


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
    _choice(unknown_domain, UnknownDomain, "--unknown-domain")
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
    view.add_row("source run's backbone alone", _maybe(report.backbone_valid_auc, "{:.4f}"),
                 _maybe(report.backbone_test_auc, "{:.4f}"))
    view.add_row("with the added domain", _maybe(report.valid_auc, "{:.4f}"), _maybe(report.test_auc, "{:.4f}"))
    console.print(view)
    console.print(f"wrote {folder}", highlight=False)


def _choice(value: str, kind, option: str) -> None:
    allowed = [member.value for member in kind]
    if value not in allowed:
        raise ConfigError(f"{option} must be one of {', '.join(allowed)}, got '{value}'")


def _maybe(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
