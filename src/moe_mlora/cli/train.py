"""`moe-mlora train`: one run from options and/or a config file, and its printed result."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from moe_mlora.cli.app import app, console, DataDirOption, maybe, user_errors
from moe_mlora.cli.options import field_of, METHOD_SECTION, Settings, with_settings
from moe_mlora.data import DatasetConfig
from moe_mlora.errors import ConfigError
from moe_mlora.experiments.records import RESULT_FILE, RunRecord
from moe_mlora.experiments.run import execute_run, RunConfig
from moe_mlora.methods import METHODS
from moe_mlora.run_config import load_config_file
from moe_mlora.training.approaches import ApproachConfig
from moe_mlora.training.config import available_cores, resolve_device, TrainConfig
from moe_mlora.training.distributed import is_main_process, process_group
from moe_mlora.training.loop import EpochRecord
from moe_mlora.training.metrics import SelectBy

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
        phases.add_row(phase.phase, str(len(phase.history)), chosen, maybe(phase.best_valid_score, "{:.4f}"),
                       maybe(phase.restored_valid_score, "{:.4f}"),
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
        view.add_row(entry.domain, f"{entry.rows:,}", f"{entry.positives:,}", maybe(entry.auc, "{:.4f}"),
                     f"{entry.weight:.3f}", maybe(entry.logloss, "{:.4f}"))
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
