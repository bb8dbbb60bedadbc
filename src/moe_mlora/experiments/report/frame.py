"""The run records as one table: one row per run, its arm, conditions and machine, and the labels and orders the tables use."""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

from moe_mlora.experiments.grids import split_label
from moe_mlora.experiments.power import PAPER_SELECTION_ARM
from moe_mlora.experiments.records import RESULT_FILE, RunRecord
from moe_mlora.methods import PAPER_METHODS
from moe_mlora.models.registry import PAPER_MODELS
from moe_mlora.settings import default_of, in_identity
from moe_mlora.training.phase import PhaseName

# the paper's arms, as its tables name them (its MoE-MLoRA: under our greedy rule, or under the paper's selection)
ARM_NAMES = {"base": "Base", "mlora": "MLoRA", "moe-mlora": "MoE-MLoRA", PAPER_SELECTION_ARM: "MoE-MLoRA"}


PAPER_ARMS = PAPER_METHODS


AUTHORS_ARM = "moe-mlora[authors-code]"


def load_records(results_dir: Path) -> pd.DataFrame:
    """One row per recorded run of the current schema (ok or failed); records of an older schema or that
    cannot be read are counted in the frame's attrs ('older', 'unreadable') and left out."""
    rows, older, unreadable = [], [], []
    for path in sorted(results_dir.glob(f"*/{RESULT_FILE}")):
        record = RunRecord.read(path.parent)
        if record is None:
            unreadable.append(path.parent.name)
            continue
        if not record.current:
            older.append(path.parent.name)
            continue
        config = record.config
        rows.append({
            "split": split_label(config.data), "dataset": config.data.dataset,
            "synthetic": config.data.dataset.endswith("synthetic"), "model": config.model,
            "approach": config.approach.approach, "arm": config.arm,
            "k": config.approach.experts_per_domain, "seed": config.train.seed,
            "batch_order": config.train.batch_order, "select_by": config.train.select_by,
            "threads": config.train.threads, "conditions": conditions_label(config),
            "table_path": config.data.table_path,
            "status": record.status, "wauc": record.test.wauc * 100 if record.ok else np.nan,
            "valid_wauc": record.valid.wauc * 100 if record.ok else np.nan,
            "auc": record.test.auc * 100 if record.ok and record.test.auc is not None else np.nan,  # pooled
            "logloss": record.test.logloss if record.ok else np.nan,
            **_diagnostic_columns(record),
            "n_domains": record.n_domains, "seconds": record.seconds, "error": record.error,
            "parameters": record.phases[-1].total_parameters if record.ok and record.phases else np.nan,
            "patience": config.train.patience, "epochs": sum(len(p.history) for p in record.phases) if record.ok else np.nan,
            "commit": record.code.get("commit") or "unknown", "dirty": bool(record.code.get("dirty")),
            "machine": json.dumps(record.machine, sort_keys=True),
            "numerics": numerics_label(record),
        })
    frame = pd.DataFrame(rows)
    frame.attrs.update(older=older, unreadable=unreadable)
    return frame


DEFAULT_CONDITIONS = "shuffled batches, selection by wauc, 1 thread"


def numerics_label(record: RunRecord) -> str:
    """What can move a run's last digits besides the code (records.numerics_description): the torch build, the
    threads and, where the record has it, the CPU model (its kernels differ: an AMD and an Intel CPU with the
    same flags need not give the same bits)."""
    cpu = record.machine.get("numerics", {}).get("cpu_model")
    return (f"torch {record.versions.get('torch', '?')}, {record.machine.get('threads', '?')} thread(s)"
            + (f", {cpu}" if cpu else ""))


def conditions_label(config) -> str:
    """The conditions a cell holds fixed: batch order, selection metric and threads (the thread count can change
    the last digits), then every other training or model setting that differs from its default, found from the
    dataclasses (a new setting needs no line here). Runs under other conditions are other cells, never extra
    seeds."""
    train = config.train
    threads = f"{train.threads} thread" + ("s" if train.threads != 1 else "")
    label = f"{train.batch_order} batches, selection by {train.select_by}, {threads}"
    named = {"seed", "batch_order", "select_by", "threads"}  # the seed varies within a cell; the rest are above
    for section in (config.model_config, train):
        for spec in fields(section):
            value = getattr(section, spec.name)
            if in_identity(spec) and spec.name not in named and value != default_of(spec):
                label += f", {spec.name.replace('_', ' ')} {list(value) if isinstance(value, tuple) else value}"
    return label


def _diagnostic_columns(record: RunRecord) -> dict:
    diagnostics = record.diagnostics
    if diagnostics is None:
        return {}
    columns = {"own_weight": diagnostics.mean_own_weight, "uniform_own_weight": diagnostics.uniform_own_weight,
               "start_own_weight": diagnostics.mean_start_own_weight, "gate_chosen_epoch": diagnostics.gate_chosen_epoch}
    experts = [phase for phase in record.phases if phase.phase == PhaseName.EXPERTS.value]
    if experts and experts[0].best_epochs:  # phase 2 of the paper's schedule: per expert, the chosen epoch
        chosen = experts[0].best_epochs
        columns["experts_kept_start"] = sum(epoch == 0 for epoch in chosen) / len(chosen)
    for path, scores in diagnostics.paths.items():
        columns[f"{path}_valid"] = scores["valid"] * 100
        columns[f"{path}_test"] = scores["test"] * 100
    return columns


def model_order(models) -> list[str]:
    """The paper's column order for its eight backbones, then any other recorded backbone by name."""
    models = set(models)
    return [m for m in PAPER_MODELS if m in models] + sorted(models - set(PAPER_MODELS))


def paper_order(split: str) -> tuple:
    """Datasets as found, then MovieLens splits as the paper lists them (gender, age, occupation), themes by count."""
    for index, field_name in enumerate(("gender", "age", "occupation")):
        if split.endswith(f"-{field_name}"):
            return (split.removesuffix(f"-{field_name}"), index)
    head, _, count = split.rpartition("-")
    return (head, int(count) if count.isdigit() else 0)


def mean_of(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def signed(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:+.2f}"


def p_text(p: float | None) -> str:
    return "-" if p is None else f"{p:.3f}"


def markdown_table(frame: pd.DataFrame, digits: int = 2) -> str:
    """A DataFrame as a markdown table (index as the first column)."""
    header = [str(frame.index.name or "")] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for index in frame.index:
        cells = ["-" if pd.isna(v) else (f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else str(v))
                 for v in (frame.at[index, column] for column in frame.columns)]
        lines.append("| " + " | ".join([str(index)] + cells) + " |")
    return "\n".join(lines)
