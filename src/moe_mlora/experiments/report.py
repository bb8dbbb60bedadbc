"""Tables and plots from recorded runs, in the paper's layout, with statistics a referee accepts.

Table 1: test WAUC (%) per split x arm x model, mean +/- 95% confidence interval (t, over seeds). Rows
Delta compare MoE-MLoRA (and any variant arm) with Base and with MLoRA: the mean of per-seed paired
differences (same split, model and seed, so the same data split and initial backbone), its 95% CI, and
a paired t-test over seeds whose p-values are Holm-corrected across every Delta cell of the table (the
family is the table). Column Avg averages the models; row Avg(Delta) averages each dataset's splits,
then the datasets, as the paper does. The ablation table does the same for the MoE-MLoRA variants
against Base. Figure 2 plots MoE-MLoRA WAUC against the total number of experts.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from moe_mlora.experiments.controlled import TABLES_FOLDER, gains, map_markdown, plot_map
from moe_mlora.experiments.figures import pyplot
from moe_mlora.errors import ConfigError
from moe_mlora.experiments.grids import split_label
from moe_mlora.experiments.power import CLAIMS, PAPER_SELECTION_ARM, Claim, split_tests, split_tests_markdown
from moe_mlora.experiments.published import PUBLISHED, published_markdown
from moe_mlora.experiments.statistics import Cell, holm, summarise
from moe_mlora.experiments.records import RESULT_FILE, SCHEMA_VERSION, RunRecord
from moe_mlora.methods import METHODS, PAPER_METHODS, arm_title as arm_name, method_title
from moe_mlora.models.registry import PAPER_MODELS  # the paper's eight columns, in its order
from moe_mlora.settings import default_of, in_identity
from moe_mlora.training.diagnostics import path_meaning
from moe_mlora.training.phase import PhaseName

# the paper's arms, as its tables name them (its MoE-MLoRA: under our greedy rule, or under the paper's selection)
ARM_NAMES = {"base": "Base", "mlora": "MLoRA", "moe-mlora": "MoE-MLoRA", PAPER_SELECTION_ARM: "MoE-MLoRA"}
PAPER_ARMS = PAPER_METHODS
AUTHORS_ARM = "moe-mlora[authors-code]"

# The paper's Table 1 (WAUC %, ML-1M and real Taobao), for side-by-side comparison.
PAPER_TABLE1 = {
    "movielens-gender": {"Base": [80.25, 80.57, 79.91, 79.95, 80.51, 80.71, 80.22, 80.30],
                         "MLoRA": [80.20, 80.57, 80.27, 80.51, 80.37, 80.68, 80.38, 80.38],
                         "MoE-MLoRA": [80.25, 80.44, 80.08, 80.21, 80.15, 80.72, 80.22, 80.21]},
    "movielens-age": {"Base": [80.46, 80.70, 80.17, 80.67, 80.74, 80.75, 80.42, 80.56],
                      "MLoRA": [80.51, 80.75, 80.36, 80.53, 80.77, 80.86, 80.60, 80.61],
                      "MoE-MLoRA": [80.39, 80.63, 80.54, 80.27, 80.48, 80.69, 80.58, 80.64]},
    "movielens-occupation": {"Base": [80.53, 80.49, 80.59, 80.40, 80.60, 80.53, 80.43, 80.62],
                             "MLoRA": [80.46, 80.39, 80.38, 80.44, 80.25, 80.62, 80.57, 80.57],
                             "MoE-MLoRA": [80.54, 80.55, 80.59, 80.60, 80.57, 80.59, 80.59, 80.56]},
    "taobao-theme-10": {"Base": [72.42, 76.21, 74.19, 76.92, 72.02, 75.83, 75.19, 74.71],
                        "MLoRA": [72.15, 76.45, 72.09, 75.88, 72.18, 76.82, 74.70, 75.35],
                        "MoE-MLoRA": [73.22, 77.19, 74.89, 76.67, 74.47, 76.91, 77.16, 76.57]},
    "taobao-theme-20": {"Base": [74.74, 77.40, 78.16, 78.79, 76.54, 78.99, 77.12, 77.16],
                        "MLoRA": [75.16, 78.06, 79.09, 78.17, 74.02, 79.22, 76.38, 76.87],
                        "MoE-MLoRA": [77.00, 78.22, 79.66, 80.71, 76.35, 79.75, 78.93, 77.92]},
}


def paper_key(split: str) -> str:
    """Our split label -> the paper's row ('movielens-100k-gender' -> 'movielens-gender')."""
    for key in PAPER_TABLE1:
        family, _, rest = key.partition("-")
        if split.startswith(family) and split.endswith(rest):
            return key
    return ""


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


Comparison = tuple[str, str]  # (arm, reference arm): Delta = arm - reference


@dataclass
class Table1:
    splits: list[str]
    models: list[str]
    arms: list[str]
    comparisons: list[Comparison]
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)  # (split, arm, model)
    deltas: dict[tuple[str, Comparison, str], Cell] = field(default_factory=dict)  # (split, comparison, model)
    row_average: dict[tuple[str, object], float] = field(default_factory=dict)  # (split, arm | comparison)
    avg_delta: dict[tuple[Comparison, str], float] = field(default_factory=dict)  # (comparison, model)
    overall_avg_delta: dict[Comparison, float] = field(default_factory=dict)
    dataset_of: dict[str, str] = field(default_factory=dict)
    valid_average: dict[str, float] = field(default_factory=dict)  # arm -> mean validation WAUC, common cells
    valid_cells: int = 0  # the (split, model, seed) cells every arm has
    untested: list[str] = field(default_factory=list)  # arms left out for lacking seeds (the ablation)
    matched_seeds: list = field(default_factory=list)  # the seeds every arm is compared on (the ablation)

    conditions: str = ""
    moe_arm: str = "moe-mlora"  # the table's MoE-MLoRA: the paper's selection where recorded, else the greedy rule

    @property
    def tests(self) -> int:
        return sum(cell.p_value is not None for cell in self.deltas.values())

    @property
    def primary(self) -> Comparison | None:
        """The family that decides the headline, named in advance: the paper's MoE-MLoRA − MLoRA where the
        table has it, else its first comparison."""
        if (self.moe_arm, "mlora") in self.comparisons:
            return (self.moe_arm, "mlora")
        return self.comparisons[0] if self.comparisons else None

    def family_tests(self, comparison: Comparison) -> int:
        return sum(cell.p_value is not None for key, cell in self.deltas.items() if key[1] == comparison)

    def significant(self, comparison: Comparison, pooled: bool = False, alpha: float = 0.05) -> list[tuple[str, str, Cell]]:
        return [(split, model, cell) for (split, c, model), cell in self.deltas.items() if c == comparison
                and (cell.p_holm_pooled if pooled else cell.p_holm) is not None
                and (cell.p_holm_pooled if pooled else cell.p_holm) < alpha]


def default_comparisons(arms: list[str]) -> list[Comparison]:
    """Every MoE-MLoRA arm against Base, and the paper's own MoE-MLoRA against MLoRA (the paper's Delta); then
    every other registered method against Base."""
    comparisons = [(arm, "base") for arm in arms if arm.startswith("moe-mlora") and "base" in arms]
    moe = paper_moe_arm(arms)
    if moe in arms and "mlora" in arms:
        comparisons.insert(1 if comparisons else 0, (moe, "mlora"))
    others = set(other_methods(arms))  # and Base's own variants (Base without the domain field)
    return comparisons + [(arm, "base") for arm in arms if (arm in others or arm.startswith("base[")) and "base" in arms]


def paper_moe_arm(arms) -> str:
    """The arm that stands for the paper's MoE-MLoRA: the paper's selection (every expert and the gate train)
    where it was recorded, else the greedy rule of the older records."""
    return PAPER_SELECTION_ARM if PAPER_SELECTION_ARM in set(arms) else "moe-mlora"


def other_methods(arms) -> list[str]:
    """The arms that are registered methods other than the paper's three (STAR, PEPNet, ...), in the registry's
    order (not the order the records happen to list them in)."""
    present = set(arms)
    return [name for name in METHODS if name in present and name not in PAPER_METHODS]


def complete_arms(ok: pd.DataFrame, splits: list[str], models: list[str]) -> list[str]:
    """The arms recorded for every split and model: the paper's three first, then variants."""
    present = [arm for arm in dict.fromkeys(ok["arm"])
               if all(((ok.split == s) & (ok.model == m) & (ok.arm == arm)).any() for s in splits for m in models)]
    return [a for a in PAPER_ARMS if a in present] + sorted(a for a in present if a not in PAPER_ARMS)


def main_conditions(records: pd.DataFrame) -> str | None:
    """The conditions of the headline table: ours (shuffled batches, WAUC selection, 1 thread) where recorded,
    else the most common."""
    if "conditions" not in records or records.empty:
        return None
    counts = records["conditions"].value_counts()
    return DEFAULT_CONDITIONS if DEFAULT_CONDITIONS in counts else str(counts.index[0])


def build_table1(records: pd.DataFrame, arms: list[str] | None = None, models: list[str] | None = None,
                 comparisons: list[Comparison] | None = None, conditions: str | None = None) -> Table1:
    """Table 1 of the records under one set of training conditions (default: main_conditions)."""
    ok = records[(records["status"] == "ok") & (records["k"] == 1)]
    if "arm" not in ok:
        ok = ok.assign(arm=ok["approach"])
    conditions = conditions or main_conditions(ok)
    if conditions is not None and "conditions" in ok:
        ok = ok[ok["conditions"] == conditions]
    if models is not None:
        ok = ok[ok.model.isin(models)]
    splits = sorted(dict.fromkeys(ok["split"]), key=_paper_order)
    models = model_order(set(ok["model"]))
    arms = arms if arms is not None else complete_arms(ok, splits, models)
    comparisons = comparisons if comparisons is not None else default_comparisons(arms)
    table = Table1(splits, models, arms, comparisons, dataset_of=dict(zip(ok["split"], ok["dataset"])),
                   conditions=conditions or "", moe_arm=paper_moe_arm(arms))
    for split in splits:
        for arm in arms:
            for model in models:
                rows = ok[(ok.split == split) & (ok.arm == arm) & (ok.model == model)]
                table.cells[(split, arm, model)] = summarise(rows["wauc"].to_numpy())
            table.row_average[(split, arm)] = _mean([table.cells[(split, arm, m)].mean for m in models])
        for comparison in comparisons:
            for model in models:
                table.deltas[(split, comparison, model)] = paired_delta(ok[(ok.split == split) & (ok.model == model)],
                                                                        *comparison)
            table.row_average[(split, comparison)] = _mean([table.deltas[(split, comparison, m)].mean for m in models])
    _holm_correct(table.deltas)
    datasets = list(dict.fromkeys(table.dataset_of[s] for s in splits))
    for comparison in comparisons:
        for model in models:
            table.avg_delta[(comparison, model)] = _mean([
                _mean([table.deltas[(s, comparison, model)].mean for s in splits if table.dataset_of[s] == d])
                for d in datasets])
        table.overall_avg_delta[comparison] = _mean([
            _mean([table.row_average[(s, comparison)] for s in splits if table.dataset_of[s] == d]) for d in datasets])
    if "valid_wauc" in ok:
        # Over the (split, model, seed) cells every arm has, so that arms compare on the same runs.
        keyed = ok[ok.arm.isin(arms)].set_index(["split", "model", "seed"])
        common = set.intersection(*(set(keyed[keyed.arm == arm].index) for arm in arms)) if arms else set()
        for arm in arms:
            rows = keyed[(keyed.arm == arm) & keyed.index.isin(list(common))]
            table.valid_average[arm] = _mean(rows["valid_wauc"].tolist())
        table.valid_cells = len(common)
    return table


def other_conditions_table(records: pd.DataFrame, conditions: str) -> tuple[Table1, list[str]]:
    """Table 1 under conditions other than the main ones, whose grid may still be running: it keeps the backbones
    that have every arm recorded in every split under these conditions, each arm with the same seeds (so every
    arm averages the same backbones and every cell of a backbone the same seeds), and returns the others, which
    wait. With no such backbone it is the arms every backbone has, as for the main table."""
    ok = records[(records.status == "ok") & (records.k == 1) & (records.conditions == conditions)]
    splits, models, arms = list(set(ok.split)), model_order(set(ok.model)), set(ok.arm)

    def complete_on_matched_seeds(model: str) -> bool:
        rows = ok[ok.model == model]
        seeds = {cell: frozenset(group.seed) for cell, group in rows.groupby(["split", "arm"])}
        return len(seeds) == len(splits) * len(arms) and len(set(seeds.values())) == 1

    complete = [m for m in models if complete_on_matched_seeds(m)]
    if not complete or len(complete) == len(models):
        return build_table1(records, conditions=conditions), []
    return build_table1(records, models=complete, conditions=conditions), [m for m in models if m not in complete]


def model_order(models) -> list[str]:
    """The paper's column order for its eight backbones, then any other recorded backbone by name."""
    models = set(models)
    return [m for m in PAPER_MODELS if m in models] + sorted(models - set(PAPER_MODELS))


def _paper_order(split: str) -> tuple:
    """Datasets as found, then MovieLens splits as the paper lists them (gender, age, occupation), themes by count."""
    for index, field_name in enumerate(("gender", "age", "occupation")):
        if split.endswith(f"-{field_name}"):
            return (split.removesuffix(f"-{field_name}"), index)
    head, _, count = split.rpartition("-")
    return (head, int(count) if count.isdigit() else 0)


def paired_delta(rows: pd.DataFrame, arm: str = "moe-mlora", reference: str = "mlora") -> Cell:
    """arm - reference over the seeds both have: mean, 95% CI, and a paired t-test's (uncorrected) p-value."""
    ours = rows[rows.arm == arm].set_index("seed")["wauc"]
    theirs = rows[rows.arm == reference].set_index("seed")["wauc"]
    seeds = sorted(set(ours.index) & set(theirs.index))
    if not seeds:
        return Cell(float("nan"), None, 0)
    differences = (ours.loc[seeds] - theirs.loc[seeds]).to_numpy()
    cell = summarise(differences)
    p_value = None
    if len(seeds) >= 2:
        p_value = float(stats.ttest_rel(ours.loc[seeds], theirs.loc[seeds]).pvalue) if np.std(differences) > 0 else 1.0
    return Cell(cell.mean, cell.ci95, cell.n, p_value)


def _holm_correct(deltas: dict) -> None:
    """Each comparison is its own family (its cells, e.g. the paper's MoE-MLoRA − MLoRA over every split and
    model: the primary family, named before the results); the pooled correction over every Delta cell of the
    table is reported beside it as secondary."""
    tested = [key for key, cell in deltas.items() if cell.p_value is not None]
    pooled = dict(zip(tested, holm([deltas[key].p_value for key in tested]))) if tested else {}
    for comparison in dict.fromkeys(key[1] for key in tested):
        family = [key for key in tested if key[1] == comparison]
        for key, adjusted in zip(family, holm([deltas[key].p_value for key in family])):
            cell = deltas[key]
            deltas[key] = Cell(cell.mean, cell.ci95, cell.n, cell.p_value, adjusted, pooled[key])


def _mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def comparison_name(comparison: Comparison) -> str:
    arm, reference = comparison
    return f"Δ {arm_name(arm)} − {arm_name(reference)}"


def table1_markdown(table: Table1) -> str:
    header = "| Dataset | Arm | " + " | ".join(m for m in table.models) + " | Avg |"
    lines = [header, "|" + " --- |" * (len(table.models) + 3)]
    for split in table.splits:
        label = split + (" (SYNTHETIC)" if table.dataset_of[split].endswith("synthetic") else "")
        for arm in table.arms:
            cells = [table.cells[(split, arm, m)].text() for m in table.models]
            lines.append(f"| {label} | {arm_name(arm)} | " + " | ".join(cells) + f" | {table.row_average[(split, arm)]:.2f} |")
            label = ""
        for comparison in table.comparisons:
            deltas = [table.deltas[(split, comparison, m)] for m in table.models]
            lines.append(f"| | {comparison_name(comparison)} | " + " | ".join(d.text(signed=True) + _stars(d) for d in deltas)
                         + f" | {table.row_average[(split, comparison)]:+.2f} |")
            if any(d.p_holm is not None for d in deltas):
                family = "primary" if comparison == table.primary else "secondary"
                lines.append(f"| | p (Holm, {family} family) | " + " | ".join(_p_text(d.p_holm) for d in deltas) + " | |")
    for comparison in table.comparisons:
        lines.append(f"| – | Avg({comparison_name(comparison)}) | "
                     + " | ".join(_signed(table.avg_delta[(comparison, m)]) for m in table.models)
                     + f" | {_signed(table.overall_avg_delta[comparison])} |")
    return "\n".join(lines)


def _signed(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:+.2f}"


def _stars(cell: Cell) -> str:
    return " *" if cell.p_holm is not None and cell.p_holm < 0.05 else ""


def _p_text(p: float | None) -> str:
    return "-" if p is None else f"{p:.3f}"


def significant_deltas(table: Table1, alpha: float = 0.05) -> list[tuple[str, Comparison, str, Cell]]:
    return [(split, comparison, model, cell) for (split, comparison, model), cell in table.deltas.items()
            if cell.p_holm is not None and cell.p_holm < alpha]


def paper_value(split_key: str, arm: str, model: str) -> float:
    """The paper's Table-1 number for (its row, one of its arms, a backbone), NaN where it has none."""
    if arm not in ARM_NAMES or model not in PAPER_MODELS or split_key not in PAPER_TABLE1:
        return float("nan")
    return PAPER_TABLE1[split_key][ARM_NAMES[arm]][PAPER_MODELS.index(model)]


def paper_comparison_markdown(table: Table1) -> str:
    """Every cell beside the paper's number: ours (mean ± 95% CI), the paper's, and ours − paper; then the
    paper's Delta rows beside ours. Backbones the paper does not have get no paper column."""
    lines = []
    arms = [arm for arm in ("base", "mlora", table.moe_arm) if arm in table.arms]
    models = [m for m in table.models if m in PAPER_MODELS]
    for split in table.splits:
        key = paper_key(split)
        if not key or not models:
            continue
        synthetic = " — ours on SYNTHETIC data" if table.dataset_of[split].endswith("synthetic") else ""
        lines += [f"**{split} (ours)** vs the paper's **{key}**{synthetic}", "",
                  "| Arm | | " + " | ".join(models) + " | Avg |", "|" + " --- |" * (len(models) + 3)]
        for arm in arms:
            ours = [table.cells[(split, arm, m)] for m in models]
            theirs = [paper_value(key, arm, m) for m in models]
            gaps = [o.mean - t for o, t in zip(ours, theirs)]
            lines += [f"| {arm_name(arm)} | ours | " + " | ".join(o.text() for o in ours)
                      + f" | {_mean([o.mean for o in ours]):.2f} |",
                      "| | paper | " + " | ".join(f"{t:.2f}" for t in theirs) + f" | {_mean(theirs):.2f} |",
                      "| | ours − paper | " + " | ".join(_signed(g) for g in gaps) + f" | {_signed(_mean(gaps))} |"]
        for comparison in [c for c in table.comparisons if c in ((table.moe_arm, "base"), (table.moe_arm, "mlora"))]:
            ours = [table.deltas[(split, comparison, m)] for m in models]
            theirs = [paper_value(key, comparison[0], m) - paper_value(key, comparison[1], m) for m in models]
            lines += [f"| {comparison_name(comparison)} | ours | " + " | ".join(o.text(signed=True) + _stars(o) for o in ours)
                      + f" | {_signed(_mean([o.mean for o in ours]))} |",
                      "| | paper | " + " | ".join(_signed(t) for t in theirs) + f" | {_signed(_mean(theirs))} |"]
        lines.append("")
    return "\n".join(lines)


def conditions_gap_markdown(main: Table1, other: Table1) -> str:
    """How much of each gap to the paper the paper's conditions explain: per cell both tables have, ours − paper
    under our conditions and under the paper's, and the part of the first that the second removes."""
    lines = ["| split | arm | model | ours − paper (" + main.conditions + ") | ours − paper (" + other.conditions
             + ") | gap closed |", "| --- | --- | --- | --- | --- | --- |"]
    closed_all, pending = [], 0
    for split in main.splits:
        key = paper_key(split)
        if not key or split not in other.splits:
            continue
        for arm in [a for a in PAPER_ARMS if a in main.arms]:
            # under the paper's conditions its MoE-MLoRA is the authors' code, where that arm was run
            other_arm = AUTHORS_ARM if arm == "moe-mlora" and AUTHORS_ARM in other.arms else arm
            if other_arm not in other.arms:
                continue
            for model in [m for m in other.models if m in main.models and m in PAPER_MODELS]:
                paper = paper_value(key, arm, model)
                main_cell, other_cell = main.cells[(split, arm, model)], other.cells[(split, other_arm, model)]
                ours, theirs = main_cell.mean - paper, other_cell.mean - paper
                if math.isnan(ours) or math.isnan(theirs):
                    continue
                if other_cell.n != main_cell.n:
                    pending += 1  # a sweep under way: its mean is over fewer seeds, so not comparable yet
                    continue
                closed = abs(ours) - abs(theirs)
                closed_all.append(closed)
                lines.append(f"| {split} | {arm_name(other_arm)} | {model} | {ours:+.2f} | {theirs:+.2f} | {closed:+.2f} |")
    waiting = (f"{pending} cell(s) are left out until they have the main table's number of seeds "
               "(a mean over fewer seeds is not comparable).") if pending else ""
    if not closed_all:
        return waiting
    lines.append(f"| all | | | | | {_mean(closed_all):+.2f} (mean) |")
    return "\n".join(lines + (["", waiting] if waiting else []))


def paper_claims_markdown(table: Table1, experts: pd.DataFrame, diagnostics: pd.DataFrame,
                          n_domains: dict[str, int]) -> str:
    """The paper's claims about MovieLens, each set beside what these runs say, with a verdict by a stated rule:
    MoE-MLoRA beats MLoRA on the occupation split; the split with the most domains gains most; more experts per
    domain do not consistently help (Figure 2). Empty when the table has none of the paper's MovieLens splits."""
    splits = {paper_key(split): split for split in table.splits if paper_key(split).startswith("movielens")}
    models = [m for m in table.models if m in PAPER_MODELS]
    primary = (table.moe_arm, "mlora")
    if primary not in table.comparisons or not splits or not models:
        return ""

    def ours(key: str) -> tuple[float, int, int, int]:
        cells = [table.deltas[(splits[key], primary, m)] for m in models]
        significant = [c for c in cells if c.p_holm is not None and c.p_holm < 0.05]
        return (_mean([c.mean for c in cells]), sum(c.mean > 0 for c in cells), sum(c.mean > 0 for c in significant),
                sum(c.mean < 0 for c in significant))

    def paper(key: str) -> float:
        return _mean([paper_value(key, "moe-mlora", m) - paper_value(key, "mlora", m) for m in models])

    lines = ["| the paper's claim | the paper | ours | verdict |", "| --- | --- | --- | --- |"]
    described = {key: ours(key) for key in splits}
    text = {key: f"{splits[key]}: Δ {_signed(v[0])} (> 0 in {v[1]} of {len(models)} backbones; significant after Holm: "
                 f"{v[2]} up, {v[3]} down)" for key, v in described.items()}
    if "movielens-occupation" in splits:
        mean, _, up, down = described["movielens-occupation"]
        verdict = ("holds" if up and not down else "same direction, not significant after Holm" if mean > 0
                   else "does not hold")
        lines.append(f"| MoE-MLoRA beats MLoRA on the occupation split (21 domains) | Δ {_signed(paper('movielens-occupation'))} "
                     f"| {text['movielens-occupation']} | {verdict} |")
    if len(splits) > 1:
        theirs = ", ".join(f"{key.removeprefix('movielens-')} {_signed(paper(key))}" for key in splits)
        best = max(described, key=lambda key: described[key][0])
        most_domains = max(splits, key=lambda key: n_domains.get(splits[key], 0))
        verdict = (f"the ordering holds ({best.removeprefix('movielens-')} largest)" if best == most_domains
                   else f"does not hold ({best.removeprefix('movielens-')} largest)")
        lines.append(f"| The split with the most domains gains most; gender and age minimal or negative | {theirs} "
                     f"| {'; '.join(text[key] for key in splits)} | {verdict} |")
    if not experts.empty and experts.k.nunique() > 1:
        split = experts_split(experts)
        more = experts[(experts.split == split) & (experts.k > 1)]
        above = int(((more.delta - more.delta_ci95) > 0).sum())
        below = int(((more.delta + more.delta_ci95) < 0).sum())
        seeds = sorted(set(more.seeds)) if not more.empty else []
        verdict = ("no intervals with one seed" if more.empty or more.seeds.max() < 2
                   else "holds" if above <= len(more) / 2 else "does not hold")
        lines.append(f"| More experts per domain do not consistently help (Figure 2, by gender) | peaks at 6 experts "
                     f"for DeepFM and AutoInt, NFM gains with more | {split}: of {len(more)} (backbone, k > 1) points, "
                     f"{above} have a 95% interval of Δ against k = 1 above 0 and {below} below ({seeds} matched "
                     f"seeds; intervals not corrected) | {verdict} |")
    notes = ["", "Verdicts: a claim about Δ MoE-MLoRA − MLoRA holds when some cell is significant in its direction "
             "after Holm (primary family) and none against it. Δ: mean over the backbones of the paper's columns, "
             "test WAUC points."]
    base = [table.deltas[key].mean for key in ((split, (table.moe_arm, "base"), m) for split in table.splits for m in models)
            if key in table.deltas]
    if base:
        kept = diagnostics["experts_kept_start"].mean() if "experts_kept_start" in diagnostics else float("nan")
        near = max(abs(min(base)), abs(max(base))) < 0.05  # within 0.05 points of Base in every cell
        notes += ["", f"What the Δ measures here: MoE-MLoRA − Base is {_signed(_mean(base))} on average (from "
                     f"{min(base):+.2f} to {max(base):+.2f} over the {len(base)} cells), and "
                     f"{kept:.0%} of the phase-2 experts (mean over the splits) were never accepted by validation "
                     "(chosen epoch 0)"
                     + (", so MoE-MLoRA is the backbone almost exactly (within 0.05 points in every cell), and Δ "
                        "MoE-MLoRA − MLoRA is mostly MLoRA's own distance from Base." if near else
                        ": MoE-MLoRA is not its backbone here, so Δ MoE-MLoRA − MLoRA measures its experts and gate "
                        "as well as MLoRA's distance from Base.")]
    return "\n".join(lines + notes)


def experts_frame(records: pd.DataFrame) -> pd.DataFrame:
    """Figure 2 data, on matched seeds: per (split, model), only the seeds every value of k has. Per k: the mean
    test WAUC with its CI, and the paired difference against k = 1 (same seed, so the same backbone) with its
    95% t-interval. The arm is the paper's MoE-MLoRA (paper_moe_arm: its selection where recorded)."""
    ok = records[records.status == "ok"] if "status" in records else records
    moe = ok[ok.arm == paper_moe_arm(ok.arm.unique() if "arm" in ok else [])]
    if "conditions" in moe and not moe.empty:
        moe = moe[moe["conditions"] == main_conditions(moe)]
    rows = []
    for (split, model), group in moe.groupby(["split", "model"]):
        ks = sorted(group["k"].unique())
        seeds = sorted(set.intersection(*(set(group[group.k == k].seed) for k in ks)))
        if not seeds:
            continue
        matched = group[group.seed.isin(seeds)]
        first = matched[matched.k == ks[0]].set_index("seed")["wauc"]
        for k in ks:
            values = matched[matched.k == k].set_index("seed")["wauc"]
            cell, delta = summarise(values.to_numpy()), summarise((values - first.loc[values.index]).to_numpy())
            rows.append({"split": split, "model": model, "k": int(k),
                         "total_experts": int(k * group["n_domains"].iloc[0]), "wauc": cell.mean, "ci95": cell.ci95,
                         "delta": delta.mean, "delta_ci95": delta.ci95, "seeds": len(seeds),
                         "seed_list": ",".join(str(s) for s in seeds)})
    return pd.DataFrame(rows)


def experts_split(frame: pd.DataFrame) -> str:
    """The split Figure 2 is about: the one with the most values of k."""
    return frame.groupby("split")["k"].nunique().idxmax()


def plot_experts(frame: pd.DataFrame, path: Path) -> Path | None:
    """Figure 2 on matched seeds: left, test WAUC vs the total number of experts; right, the paired difference
    against k = 1 with its 95% interval (one line per model, points dodged sideways)."""
    if frame.empty:
        return None
    split = experts_split(frame)
    data = frame[frame.split == split]
    if data["k"].nunique() < 2:
        return None
    plt = pyplot()

    models = model_order(set(data.model))
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    step = min(0.8, 0.6 * min(np.diff(sorted(data.total_experts.unique())))) / max(len(models), 1)
    for index, model in enumerate(models):
        line = data[data.model == model].sort_values("total_experts")
        offset = (index - (len(models) - 1) / 2) * step
        left.errorbar(line.total_experts + offset, line.wauc, yerr=line.ci95.fillna(0), marker="o", markersize=4,
                      capsize=2, linewidth=1, label=model)
        right.errorbar(line.total_experts + offset, line.delta, yerr=line.delta_ci95.fillna(0), marker="o",
                       markersize=4, capsize=2, linewidth=1, label=model)
    right.axhline(0, color="black", linewidth=1)
    seeds = sorted(set(data.seed_list))
    for axis in (left, right):
        axis.set_xlabel("total number of experts (k per domain × domains)")
        axis.set_xticks(sorted(data.total_experts.unique()))
        axis.grid(alpha=0.3)
    left.set_ylabel("test WAUC (%)")
    right.set_ylabel("Δ test WAUC vs k = 1 (points, paired by seed)")
    left.set_title(f"MoE-MLoRA, {split}: mean ± 95% CI", fontsize=10)
    right.set_title(f"paired Δ against k = 1 ± 95% CI; seeds {' / '.join(seeds)}", fontsize=10)
    right.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def markdown_table(frame: pd.DataFrame, digits: int = 2) -> str:
    """A DataFrame as a markdown table (index as the first column)."""
    header = [str(frame.index.name or "")] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for index in frame.index:
        cells = ["-" if pd.isna(v) else (f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else str(v))
                 for v in (frame.at[index, column] for column in frame.columns)]
        lines.append("| " + " | ".join([str(index)] + cells) + " |")
    return "\n".join(lines)


MIN_SEEDS = 3  # the fewest seeds a compared arm may have (the bar the issues set for every table)


def ablation_table(records: pd.DataFrame) -> Table1 | None:
    """Every MoE-MLoRA arm (k = 1) against Base, on the models that have more than one such arm, under the main
    conditions, on matched seeds: the seeds that Base and every compared arm have in every (split, model) cell.
    An arm with fewer than MIN_SEEDS such seeds, or without the seeds the others share, is left out and listed in
    the table's `untested` (an underpowered variant is not compared). Seeds that only some arms have (Table 1's
    extra seeds, run in the same results folder) are left out of every arm alike."""
    ok = records[(records.status == "ok") & (records.k == 1)]
    if "conditions" in ok and not ok.empty:
        ok = ok[ok["conditions"] == main_conditions(ok)]
    moe = ok[ok.approach == "moe-mlora"]
    arms_per_model = moe.groupby("model")["arm"].nunique()
    if arms_per_model.empty or arms_per_model.max() < 2:
        return None
    models = [m for m in model_order(arms_per_model.index) if arms_per_model.get(m, 0) == arms_per_model.max()]
    candidates = ["moe-mlora"] + sorted(set(moe.arm) - {"moe-mlora"})
    scope = ok[ok.model.isin(models)]
    cells = sorted({cell for cell, _ in scope[scope.arm == "base"].groupby(["split", "model"])})

    def seeds_in_every_cell(arm: str) -> set:
        rows = scope[scope.arm == arm]
        has = {cell: set(group.seed) for cell, group in rows.groupby(["split", "model"])}
        return set.intersection(*(has.get(cell, set()) for cell in cells)) if cells else set()

    base_seeds = seeds_in_every_cell("base")
    covered = {arm: seeds_in_every_cell(arm) & base_seeds for arm in candidates if (scope.arm == arm).any()}
    eligible = [arm for arm, seeds in covered.items() if len(seeds) >= MIN_SEEDS]
    matched = set.intersection(*(covered[arm] for arm in eligible)) if eligible else set()
    if len(matched) < MIN_SEEDS and "moe-mlora" in eligible:  # no common set: the default variant's seeds decide
        matched = covered["moe-mlora"]
    if len(matched) < MIN_SEEDS:
        matched = set()
    arms = ["base"] + [arm for arm in eligible if matched and matched <= covered[arm]]
    untested = [arm for arm in covered if arm not in arms]
    chosen = ok[ok.arm.isin(arms) & ok.seed.isin(matched or base_seeds)]
    table = build_table1(chosen, arms=arms, models=models,
                         comparisons=[(arm, "base") for arm in arms if arm != "base"])
    table.untested, table.matched_seeds = untested, sorted(matched)
    return table


def diagnostics_frame(records: pd.DataFrame, conditions: str | None = None) -> pd.DataFrame:
    """Per split, MoE-MLoRA arm (k = 1) and training conditions, averaged over models and seeds: the gate's weight
    on own experts at the start and the end of the gate phase (and what uniform gives), how often the gate phase
    kept its starting gate (chosen epoch 0), and the three forward paths' validation and test WAUC. Conditions are
    never pooled: a row under other than the main conditions names them (`conditions` keeps only those)."""
    moe = records[(records.status == "ok") & (records.k == 1) & (records.approach == "moe-mlora")]
    if "conditions" not in moe:
        moe = moe.assign(conditions="")
    main = main_conditions(records[(records.status == "ok") & (records.k == 1)])
    if conditions is not None:
        moe = moe[moe.conditions == conditions]
    if moe.empty or "own_weight" not in moe:
        return pd.DataFrame()
    moe = moe.assign(kept_start=(moe["gate_chosen_epoch"] == 0).astype(float)
                     if "gate_chosen_epoch" in moe else np.nan)
    columns = ["experts_kept_start", "uniform_own_weight", "start_own_weight", "own_weight", "kept_start"] + [
        f"{p}_{part}" for p in ("backbone", "own-experts", "mixture") for part in ("valid", "test")]
    keys = ["split", "arm", "conditions"]
    frame = moe.reindex(columns=keys + columns).groupby(keys)[columns].mean()
    frame["runs"] = moe.groupby(keys).size()
    frame.index = [f"{split} · {arm_name(arm)}" + ("" if setting in (main, "") else f" · {setting}")
                   for split, arm, setting in frame.index]
    frame.index.name = "split · arm"
    return frame


def path_labels(records: pd.DataFrame) -> list[str]:
    """What the forward paths of each MoE-MLoRA arm in the records are (they differ per schedule and k)."""
    moe = records[(records.status == "ok") & (records.approach == "moe-mlora")]
    lines = []
    for arm in sorted(set(moe.arm)):
        schedule = "authors-code" if "authors-code" in arm else "paper"
        for k in sorted(set(moe[moe.arm == arm].k)):
            meaning = path_meaning(schedule, int(k))
            lines.append(f"- {arm_name(arm)}, k = {k}: backbone = {meaning['backbone']}; own-experts = "
                         f"{meaning['own-experts']}; mixture = {meaning['mixture']}")
    return lines


def families_summary(table: Table1) -> str:
    """The headline decided by the primary family, and the pooled correction beside it."""
    if table.primary is None or not table.tests:
        return ""
    parts = []
    for comparison in table.comparisons:
        tests = table.family_tests(comparison)
        own, pooled = len(table.significant(comparison)), len(table.significant(comparison, pooled=True))
        role = "primary" if comparison == table.primary else "secondary"
        parts.append(f"- {comparison_name(comparison)} ({role} family, {tests} cells): {own} significant after Holm "
                     f"within the family; {pooled} after Holm pooled over all {table.tests} Δ cells")
    wins = what_wins_where(table)
    return "\n".join(parts) + (f"\n\n{wins}" if wins else "")


def what_wins_where(table: Table1, alpha: float = 0.05) -> str:
    """In words, where each of the field's methods differs from Base: the cells whose Δ is significant after Holm
    within the method's own family, with their sign; '' when the table compares no such method with Base."""
    compared = [c for c in table.comparisons if c[1] == "base" and c[0] in other_methods([c[0]])]
    if not compared:
        return ""
    found = []
    for comparison in compared:
        cells = sorted(table.significant(comparison, alpha=alpha), key=lambda hit: (_paper_order(hit[0]), hit[1]))
        for direction, chosen in (("above", [h for h in cells if h[2].mean > 0]), ("below", [h for h in cells if h[2].mean < 0])):
            if chosen:
                where = ", ".join(f"{split} × {model} ({_signed(cell.mean)})" for split, model, cell in chosen)
                found.append(f"{arm_name(comparison[0])} is {direction} Base in {len(chosen)} of "
                             f"{table.family_tests(comparison)} cells: {where}")
    names = ", ".join(arm_name(c[0]) for c in compared)
    if not found:
        return (f"**What wins where** (each method against Base, Holm within its family, p < {alpha:g}): no cell of "
                f"{names} differs from Base.")
    quiet = [arm_name(c[0]) for c in compared if not table.significant(c, alpha=alpha)]
    return (f"**What wins where** (each method against Base, Holm within its family, p < {alpha:g}): "
            + "; ".join(found) + "." + (f" No cell of {', '.join(quiet)} differs from Base." if quiet else ""))


def methods_section(records: pd.DataFrame, conditions: str, already_shown: list[str] = (),
                    figure: Path | None = None) -> list[str]:
    """The field's methods (registered, not the paper's) beside the paper's arms, each tested against Base (one
    Holm family per method); nothing when Table 1 already shows them all. A method is shown once it has, in
    every (split, model) cell of the models shown, the seeds Base has there (so every cell compares the same
    seeds). The models shown are the set that shows the most such (method, model) pairs (then more models): one
    method finished on a third backbone does not hide the others finished on two. What waits is named. With
    `figure`, the Δs against Base are also drawn there (`plot_method_deltas`) and the section shows it."""
    single = records[(records.status == "ok") & (records.k == 1) & (records.conditions == conditions)]
    others = other_methods(single.arm.unique())
    if not others or set(others) <= set(already_shown):
        return []
    splits = sorted(set(single.split))
    seeds = {key: frozenset(group.seed) for key, group in single.groupby(["arm", "split", "model"])}

    def complete_on(arm: str, model: str) -> bool:
        return all(seeds.get((arm, s, model), frozenset()) == seeds.get(("base", s, model)) for s in splits)

    candidates = [m for m in model_order(set(single.model)) if any(complete_on(arm, m) for arm in others)]
    best = (0, 0, [], [])
    for size in range(1, len(candidates) + 1):
        for chosen in itertools.combinations(candidates, size):
            complete = [arm for arm in others if all(complete_on(arm, m) for m in chosen)]
            best = max(best, (len(complete) * size, size, list(chosen), complete), key=lambda b: b[:2])
    _, _, models, shown = best
    if not shown:
        return []
    arms = [a for a in complete_arms(single[single.model.isin(models)], splits, models) if a not in others or a in shown]
    table = build_table1(records, arms=arms, models=models, conditions=conditions)
    used = sorted(single[single.arm.isin(shown) & single.model.isin(models)].seed.unique().tolist())
    waiting = [arm for arm in others if arm not in shown]
    left_out = [(m, [arm_name(a) for a in others if complete_on(a, m)]) for m in candidates if m not in models]
    drawn = plot_method_deltas(method_deltas(table), figure) if figure is not None else None
    sizes = parameter_markdown(single[single.model.isin(models)], ["base", *shown])
    method_claims = tuple(Claim(comparison_name(c), *c) for c in table.comparisons if c[0] in shown)
    tests = split_tests(single[single.model.isin(models)], method_claims)
    return [f"## The field's methods beside the paper's arms ({conditions}; test WAUC (%), seeds {used})", "",
            "Only the models on which these methods have every cell on Base's seeds. Each method is tested against "
            "Base on the same seeds, one Holm family per comparison.", "", table1_markdown(table), "",
            families_summary(table), ""] + ([f"![Δ against Base]({drawn.name})", ""] if drawn else []) + (
        [f"### The same Δs per split, the {len(models)} backbones as replicates", "", split_tests_markdown(tests)]
        if tests else []) + ([sizes, ""] if sizes else []) + (
        [f"Not shown until every (split, model) cell has a run on Base's seeds: "
         f"{', '.join(arm_name(a) for a in waiting)}.", ""] if waiting else []) + (
        ["Backbones left out of this table, where fewer methods are complete so far: "
         + "; ".join(f"{m} (complete there: {', '.join(names)})" for m, names in left_out) + ".", ""]
        if left_out else [])


def method_deltas(table: Table1) -> pd.DataFrame:
    """Every Δ against Base in `table`, one row per (method, split, model): the mean of the per-seed paired
    differences (test WAUC points), its 95% half-width, its Holm-corrected p (within the method's family) and
    whether that is below 0.05."""
    rows = [{"method": arm_name(arm), "split": split, "model": model, "delta": cell.mean, "ci95": cell.ci95,
             "seeds": cell.n, "p_holm": cell.p_holm, "significant": cell.p_holm is not None and cell.p_holm < 0.05}
            for (split, (arm, reference), model), cell in table.deltas.items() if reference == "base"]
    return pd.DataFrame(rows, columns=["method", "split", "model", "delta", "ci95", "seeds", "p_holm", "significant"])


def plot_method_deltas(deltas: pd.DataFrame, path: Path) -> Path | None:
    """A forest plot: one panel per method, one row per (split, model), its Δ against Base with the 95% interval;
    a filled point is significant after Holm within the method's family, a hollow one is not."""
    if deltas.empty:
        return None
    plt = pyplot()

    methods = list(dict.fromkeys(deltas.method))
    models = model_order(set(deltas.model))
    cells = sorted(set(zip(deltas.split, deltas.model)), key=lambda c: (_paper_order(c[0]), models.index(c[1])))
    row_of = {cell: index for index, cell in enumerate(reversed(cells))}
    figure, axes = plt.subplots(1, len(methods), figsize=(2.6 * len(methods) + 1.8, 0.32 * len(cells) + 1.4),
                                sharex=True, sharey=True, squeeze=False)  # one scale: panels compare
    for axis, method in zip(axes[0], methods):
        for row in deltas[deltas.method == method].itertuples():
            y = row_of[(row.split, row.model)]
            axis.errorbar(row.delta, y, xerr=0 if row.ci95 is None or row.ci95 != row.ci95 else row.ci95, fmt="o",
                          markersize=4, capsize=2, color="C0", markerfacecolor="C0" if row.significant else "white")
        axis.axvline(0, color="black", linewidth=1)
        axis.set_title(method, fontsize=9)
        axis.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(list(row_of.values()), [f"{split} · {model}" for split, model in row_of])
    axes[0][0].tick_params(axis="y", labelsize=7)
    figure.supxlabel("Δ test WAUC against Base (points, paired by seed) ± 95% t-interval; filled: significant after "
                     "Holm within the method's family", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_report(results_dir: Path, out_dir: Path | None = None, title: str | None = None,
                 published: str | None = None) -> dict[str, Path]:
    """report.md (+ table1.csv, figure2.png, methods.png, records.csv) from every run recorded under results_dir (titled
    by the name of the folder it is written to unless `title` is given); `published` names a published table
    to set beside the runs (moe_mlora.experiments.published.PUBLISHED)."""
    if published is not None and published not in PUBLISHED:
        raise ConfigError(f"--published must be one of {', '.join(PUBLISHED)}, got '{published}'")
    out_dir = out_dir or results_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    records = load_records(results_dir)
    written: dict[str, Path] = {}
    if records.empty:
        older = len(records.attrs.get("older", []))
        raise FileNotFoundError(f"no run records of the current schema (*/result.json) under {results_dir}"
                                + (f"; {older} of an older schema: rerun the sweep to replace them" if older else ""))
    if published is not None:
        PUBLISHED[published].check(records)  # before anything is written
    records.drop(columns=["machine"]).to_csv(out_dir / "records.csv", index=False)
    written["records"] = out_dir / "records.csv"
    sections = [f"# moe-mlora results ({title or out_dir.name})", ""]
    sections += _provenance(results_dir, records)
    ok = records[records.status == "ok"]
    single = ok[ok.k == 1]
    if published is not None:
        table = PUBLISHED[published]
        sections += [f"## Beside {table.caption}", "", published_markdown(records, table), ""]
    if not single.empty:
        main = main_conditions(single)
        first, waiting_first = build_table1(records, conditions=main), []
        if not first.arms:  # a sweep under way, no arm in every cell yet: the backbones it has finished
            first, waiting_first = other_conditions_table(records, main)
        tables, waiting = [first], {main: waiting_first}
        for conditions in sorted(set(single["conditions"]) - {main}):
            table, waiting[conditions] = other_conditions_table(records, conditions)
            tables.append(table)
        long = []
        for index, table in enumerate(tables):
            seeds = sorted(single[single.conditions == table.conditions].seed.unique().tolist())
            title = "Table 1" if index == 0 else "Table 1 under other conditions"
            sections += [f"## {title}: {table.conditions}; test WAUC (%), mean ± 95% CI over seeds {seeds}", "",
                         table1_markdown(table), "", statistics_note(table), "",
                         families_summary(table), ""]
            mixed = mixed_machine_cells(single, table)
            if mixed:
                sections += [mixed, ""]
            if waiting[table.conditions]:
                sections += ["Not yet in this table (some arm, split or seed is not recorded under these conditions): "
                             + ", ".join(waiting[table.conditions]) + ".", ""]
            beside = paper_comparison_markdown(table)
            if beside.strip():  # only for the paper's datasets and backbones
                sections += [f"### Beside the paper ({table.conditions})", "", beside]
            if index:
                gap = conditions_gap_markdown(tables[0], table)
                if gap:
                    sections += ["### How much of the gap to the paper these conditions explain", "",
                                 "Per cell both tables have: ours − paper under the main conditions and under these; "
                                 "gap closed = |first| − |second| (positive: these conditions bring us nearer the "
                                 "paper).", "", gap, ""]
            long += [{"conditions": table.conditions, "split": s, "arm": a, "model": m, "wauc": c.mean,
                      "ci95": c.ci95, "seeds": c.n, "paper": paper_value(paper_key(s), a, m)}
                     for (s, a, m), c in table.cells.items()]
        tests = split_tests(records[records.conditions == tables[0].conditions], claims_of(tables[0]))
        if tests:
            sections += [f"## Split-level tests: backbone × seed pairs as replicates ({tables[0].conditions})", "",
                         split_tests_markdown(tests)]
        if other_methods(tables[0].arms):  # the field's methods in Table 1 itself: their sizes beside Base's
            main_rows = single[(single.conditions == tables[0].conditions) & single.model.isin(tables[0].models)]
            sizes = parameter_markdown(main_rows, ["base", *other_methods(tables[0].arms)])
            if sizes:
                sections += [f"## Sizes ({tables[0].conditions})", "", sizes, ""]
        pd.DataFrame(long).to_csv(out_dir / "table1.csv", index=False)
        written["table1"] = out_dir / "table1.csv"
        methods_figure = out_dir / "methods.png"
        methods_figure.unlink(missing_ok=True)  # a figure left by an earlier report must not outlive its section
        sections += methods_section(records, main, already_shown=tables[0].arms, figure=methods_figure)
        if methods_figure.exists():
            written["methods"] = methods_figure
    ablation = ablation_table(records)
    if ablation is not None and (len(ablation.arms) > 2 or ablation.untested):
        validation = pd.DataFrame({"mean validation WAUC (%)": ablation.valid_average}).rename(index=arm_name)
        validation.index.name = "arm"
        sections += [f"## Ablation: MoE-MLoRA variants against Base, test WAUC (%), matched seeds "
                     f"{ablation.matched_seeds}", "", table1_markdown(ablation), "",
                     statistics_note(ablation), "", families_summary(ablation), "",
                     f"Mean validation WAUC per arm over the {ablation.valid_cells} (split, model, seed) cells that every arm "
                     "has (what a variant is chosen by; never test):", "",
                     markdown_table(validation), ""]
        if ablation.untested:
            sections += [f"Untested (fewer than {MIN_SEEDS} of the matched seeds, so not compared): "
                         + ", ".join(arm_name(a) for a in ablation.untested), ""]
    diagnostics = diagnostics_frame(records)
    if not diagnostics.empty:
        sections += ["## What the gate does (MoE-MLoRA, k = 1; means over models and seeds)", "",
                     "experts_kept_start: the share of phase-2 experts whose chosen epoch was 0, i.e. that validation "
                     "never accepted (such an expert stays at its start, B = 0, and adds nothing); "
                     "uniform_own_weight: what a uniform gate puts on a domain's own expert; start_own_weight and "
                     "own_weight: the gate's weight on it when the gate phase began and at the end, averaged over "
                     "domains; kept_start: the share of runs whose gate phase chose epoch 0 (kept its starting gate). "
                     "Then WAUC (%) of three forward paths of the final model, which are per arm:", "",
                     *path_labels(records[records.k == 1]), "", markdown_table(diagnostics, digits=3), ""]
    experts = experts_frame(records)
    if not single.empty:
        claims = paper_claims_markdown(tables[0], experts, diagnostics_frame(records, tables[0].conditions or None),
                                       single.groupby("split")["n_domains"].first().to_dict())
        if claims:
            sections += [f"## The paper's MovieLens claims, checked ({tables[0].conditions})", "", claims, ""]
    if not experts.empty:
        split = experts_split(experts)
        figure = plot_experts(experts, out_dir / "figure2.png")
        if figure:
            written["figure2"] = figure
            data = experts[experts.split == split]
            pivot = data.pivot_table(index="model", columns="total_experts", values="wauc")
            deltas = data.assign(text=[f"{d:+.2f} ± {c:.2f}" if c == c and c is not None else f"{d:+.2f}"
                                       for d, c in zip(data.delta, data.delta_ci95)])
            delta_pivot = deltas.pivot(index="model", columns="total_experts", values="text")
            order = [m for m in model_order(pivot.index)]
            pivot, delta_pivot = pivot.reindex(order), delta_pivot.reindex(order)
            pivot.columns = [f"{c} experts" for c in pivot.columns]
            delta_pivot.columns = [f"{c} experts" for c in delta_pivot.columns]
            pivot.index.name = delta_pivot.index.name = "model"
            pivot["seeds"] = data.groupby("model")["seed_list"].first()
            rule = arm_name(paper_moe_arm(single.arm.unique()))
            sections += [f"## Figure 2: {rule} vs total experts ({split}), matched seeds", "",
                         "![Figure 2](figure2.png)", "",
                         "Every point of a model uses the same seeds (those every k has). Test WAUC (%):", "",
                         markdown_table(pivot), "", "Paired Δ against k = 1 (points, ± 95% t-interval over seeds):",
                         "", markdown_table(delta_pivot), ""]
    controlled = gains(records, results_dir / TABLES_FOLDER) if "table_path" in records else pd.DataFrame()
    if not controlled.empty:
        figure = plot_map(controlled, out_dir / "controlled.png")
        written["controlled"] = figure
        controlled.to_csv(out_dir / "controlled.csv", index=False)
        sections += ["## When do domain adapters help? (controlled tables)", "", "![map](controlled.png)", "",
                     "Gain over Base: test WAUC points, mean of per-seed paired differences ± 95% t-interval (not "
                     "corrected for multiplicity). Oracle gap: the true per-domain model's test WAUC minus that of the "
                     "best model that cannot see the domain (it knows the truth and mixes the domains a pair could "
                     "come from), on the same test rows (moe_mlora.data.controlled).", "",
                     map_markdown(controlled), ""]
    patience = patience_markdown(ok)
    if patience:
        sections += ["## A longer patience beside the protocol's", "", patience, ""]
    failed = records[records.status == "failed"]
    if not failed.empty:
        sections += ["## Failed runs", ""] + [f"- {r.split} {r.model} {r.arm} seed {r.seed}: {r.error}"
                                               for r in failed.itertuples()] + [""]
    (out_dir / "report.md").write_text("\n".join(sections) + "\n")
    written["report"] = out_dir / "report.md"
    return written


def patience_markdown(ok: pd.DataFrame) -> str:
    """Runs that differ only in early stopping's patience (same split, backbone, arm, seed, and every other
    condition): how often and how much the longer patience changes the test WAUC, and what it costs in epochs."""
    if "patience" not in ok or ok.patience.nunique() < 2:
        return ""
    other = ok.assign(rest=[c.replace(f", patience {p}", "") for c, p in zip(ok.conditions, ok.patience)])
    keys = ["split", "model", "arm", "seed", "rest"]
    short, long = other.patience.min(), other.patience.max()
    pairs = other[other.patience == short].merge(other[other.patience == long], on=keys, suffixes=("_short", "_long"))
    if pairs.empty:
        return ""
    delta = pairs.wauc_long - pairs.wauc_short
    changed = delta != 0
    lines = [f"| arm | pairs | test WAUC changed | Δ (patience {long} − {short}), mean | range | epochs, mean ({short} → {long}) |",
             "|---|---|---|---|---|---|"]
    for arm, group in pairs.assign(delta=delta).groupby("arm"):
        lines.append(f"| {arm_name(arm)} | {len(group)} | {int((group.delta != 0).sum())} | {group.delta.mean():+.3f} "
                     f"| {group.delta.min():+.3f} … {group.delta.max():+.3f} "
                     f"| {group.epochs_short.mean():.1f} → {group.epochs_long.mean():.1f} |")
    test = stats.ttest_1samp(delta, 0) if len(delta) > 1 and delta.std() > 0 else None
    return ("\n".join(lines) + f"\n\nOver all {len(pairs)} pairs the longer patience changed the test WAUC in "
            f"{int(changed.sum())}, by {delta.mean():+.3f} points on average"
            + (f" (paired t over the pairs: p {test.pvalue:.3g})" if test is not None else "") + ". Test WAUC points.")


def parameter_markdown(records: pd.DataFrame, arms: list[str]) -> str:
    """Each arm's trainable parameters per split and backbone (the model as trained: backbone and the method's
    parts), with its multiple of Base's, and the method's own parameters per domain (own / domains)."""
    if "parameters" not in records or records.parameters.isna().all():
        return ""
    sizes = records.groupby(["arm", "split", "model"]).agg(parameters=("parameters", "first"),
                                                            domains=("n_domains", "first")).reset_index()
    base = sizes[sizes.arm == "base"].set_index(["split", "model"]).parameters
    lines = ["| method | split | " + " | ".join(model_order(set(sizes.model))) + " |",
             "|---|---|" + "---|" * sizes.model.nunique()]
    for arm in [a for a in arms if a in set(sizes.arm)]:
        for split in sorted(set(sizes.split), key=_paper_order):
            cells = []
            for model in model_order(set(sizes.model)):
                row = sizes[(sizes.arm == arm) & (sizes.split == split) & (sizes.model == model)]
                if row.empty or (split, model) not in base.index:
                    cells.append("-")
                    continue
                total, domains, reference = int(row.parameters.iloc[0]), int(row.domains.iloc[0]), base[(split, model)]
                own = (total - reference) / max(domains, 1)
                cells.append(f"{total:,} ({total / reference:.2f}× Base" + (f"; {own:,.0f} per domain)" if arm != "base" else ")"))
            lines.append(f"| {arm_name(arm)} | {split} | " + " | ".join(cells) + " |")
    return ("Size: trainable parameters of the model as trained (backbone and the method's parts), its multiple of "
            "Base's, and the method's own parameters divided by the number of domains:\n\n" + "\n".join(lines))


def mixed_machine_cells(records: pd.DataFrame, table: Table1) -> str:
    """A line naming the table's cells whose seeds ran on more than one machine (CPU model, torch, threads), with
    which seeds ran where; empty when every cell is of one machine."""
    if "numerics" not in records:
        return ""
    rows = records[(records.conditions == table.conditions) & records.arm.isin(table.arms) & records.model.isin(table.models)
                   & records.split.isin(table.splits)]
    parts = []
    for (split, arm, model), group in rows.groupby(["split", "arm", "model"]):
        if group.numerics.nunique() > 1:
            where = "; ".join(f"seeds {sorted(g.seed.tolist())} on {n}" for n, g in group.groupby("numerics"))
            parts.append(f"{split} × {arm_name(arm)} × {model} ({where})")
    if not parts:
        return ""
    return (f"**{len(parts)} cell(s) of this table mix machines** (a mean over seeds made on different CPU models or "
            "torch builds; a rerun on another machine moves a run's last digits): " + "; ".join(parts) + ".")


def claims_of(table: Table1) -> tuple[Claim, ...]:
    """The paper's claims (moe_mlora.experiments.power.CLAIMS), then every other Δ family of the table, each
    tested per split with backbones as replicates."""
    named = {(claim.arm, claim.reference) for claim in CLAIMS}
    return CLAIMS + tuple(Claim(comparison_name(c), *c) for c in table.comparisons if c not in named)


def statistics_note(table: Table1) -> str:
    """How to read a table's cells and tests, naming its primary family (the paper's Δ where the table has it)."""
    if table.primary == (table.moe_arm, "mlora"):
        primary = "the paper's own Δ MoE-MLoRA − MLoRA"
    elif table.primary is not None:
        primary = f"{comparison_name(table.primary)}, as the table has no MLoRA arm for the paper's Δ"
    else:
        primary = "none here (the table has no two arms to compare)"
    return STATISTICS_NOTE.format(tests=table.tests, primary=primary)


STATISTICS_NOTE = (
    "Cells: mean ± half-width of the 95% t-interval over seeds. Δ rows: mean of per-seed paired differences "
    "(same split, model and seed) ± its 95% t-interval; p (Holm): a two-sided paired t-test over seeds, "
    "Holm-corrected within its family: each comparison's cells over every split and model form one family, and "
    "the primary family, named before any result, is {primary} (the correction pooled "
    "over all {tests} Δ cells of the table is given below as secondary). * marks p < 0.05 after the family's "
    "correction. The intervals are per cell and not corrected. They cover the seed-to-seed variation of "
    "training (initialisation, batch order, dropout) on one fixed data split (seed 123), not the variation "
    "between data splits or datasets. Avg rows average each dataset's splits, then the datasets, as the paper.")


def _provenance(results_dir: Path, records: pd.DataFrame) -> list[str]:
    machines = {json.dumps(json.loads(m), sort_keys=True) for m in records["machine"] if m and m != "{}"}
    sweeps_file = results_dir / "sweeps.jsonl"
    wall = sum(json.loads(line)["seconds"] for line in sweeps_file.read_text().splitlines()) if sweeps_file.is_file() else None
    lines = [f"- runs: {int((records.status == 'ok').sum())} finished, {int((records.status == 'failed').sum())} failed; "
             f"seeds: {sorted(records.seed.unique().tolist())}",
             f"- compute: {records.seconds.sum() / 60:.1f} min summed over runs"
             + (f"; {wall / 60:.1f} min of sweep wall time" if wall else "")]
    commits = records.groupby(["commit", "dirty"]).size()
    lines.append("- code: " + "; ".join(f"commit {commit[:12]}{' (with uncommitted changes)' if dirty else ''}: "
                                        f"{count} runs" for (commit, dirty), count in commits.items()))
    settings = records.groupby("conditions").size()
    lines.append("- training conditions (each its own table; a cell never pools conditions): "
                 + "; ".join(f"{conditions}: {count} runs" for conditions, count in settings.items()))
    for machine in sorted(machines):
        lines.append(f"- machine: {machine}")
    numerics = records.groupby("numerics").size()
    if len(numerics) > 1:  # float results depend on the torch build and the thread count
        lines.append("- **numerics differ between records**: " + "; ".join(f"{setting}: {count} runs"
                                                                          for setting, count in numerics.items()))
    if records.synthetic.any():
        lines.append("- rows marked SYNTHETIC ran on the generated Taobao stand-in, not the real logs")
    if records.attrs.get("older"):
        lines.append(f"- left out: {len(records.attrs['older'])} records of an older schema than {SCHEMA_VERSION} "
                     "(rerun the sweep to replace them)")
    if records.attrs.get("unreadable"):
        lines.append(f"- left out: {len(records.attrs['unreadable'])} unreadable records: "
                     + ", ".join(records.attrs["unreadable"]))
    return lines + [""]


