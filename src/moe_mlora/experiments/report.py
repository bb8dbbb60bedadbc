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

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from moe_mlora.experiments.grids import split_label
from moe_mlora.experiments.records import RESULT_FILE, SCHEMA_VERSION, RunRecord
from moe_mlora.models import MODELS

ARM_NAMES = {"base": "Base", "mlora": "MLoRA", "moe-mlora": "MoE-MLoRA"}
PAPER_ARMS = ("base", "mlora", "moe-mlora")

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
PAPER_MODELS = list(MODELS)  # the paper's column order: WDL NFM AutoInt PNN DCN FiBiNET DeepFM xDeepFM


def arm_name(arm: str) -> str:
    if arm in ARM_NAMES:
        return ARM_NAMES[arm]
    approach, _, variant = arm.partition("[")
    return f"{ARM_NAMES.get(approach, approach)} [{variant.rstrip(']')}]"


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
            "approach": config.approach.approach, "arm": config.approach.arm,
            "k": config.approach.experts_per_domain, "seed": config.train.seed,
            "batch_order": config.train.batch_order, "select_by": config.train.select_by,
            "status": record.status, "wauc": record.test.wauc * 100 if record.ok else np.nan,
            "valid_wauc": record.valid.wauc * 100 if record.ok else np.nan,
            **_diagnostic_columns(record),
            "n_domains": record.n_domains, "seconds": record.seconds, "error": record.error,
            "commit": record.code.get("commit") or "unknown", "dirty": bool(record.code.get("dirty")),
            "machine": json.dumps(record.machine, sort_keys=True),
            "numerics": f"torch {record.versions.get('torch', '?')}, {record.machine.get('threads', '?')} thread(s)",
        })
    frame = pd.DataFrame(rows)
    frame.attrs.update(older=older, unreadable=unreadable)
    return frame


def _diagnostic_columns(record: RunRecord) -> dict:
    diagnostics = record.diagnostics
    if diagnostics is None:
        return {}
    columns = {"own_weight": diagnostics.mean_own_weight, "uniform_own_weight": diagnostics.uniform_own_weight}
    for path, scores in diagnostics.paths.items():
        columns[f"{path}_valid"] = scores["valid"] * 100
        columns[f"{path}_test"] = scores["test"] * 100
    return columns


@dataclass(frozen=True)
class Cell:
    mean: float
    ci95: float | None  # half-width; None with one seed
    n: int
    p_value: float | None = None  # paired t-test over seeds (Delta cells only), uncorrected
    p_holm: float | None = None  # the same, Holm-corrected across the table

    def text(self, signed: bool = False) -> str:
        if math.isnan(self.mean):
            return "-"
        value = f"{self.mean:+.2f}" if signed else f"{self.mean:.2f}"
        return value + (f" ± {self.ci95:.2f}" if self.ci95 is not None else "")


def summarise(values: np.ndarray) -> Cell:
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return Cell(float("nan"), None, 0)
    if len(values) == 1:
        return Cell(float(values[0]), None, 1)
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return Cell(float(values.mean()), float(half), len(values))


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

    @property
    def tests(self) -> int:
        return sum(cell.p_value is not None for cell in self.deltas.values())


def default_comparisons(arms: list[str]) -> list[Comparison]:
    """Every MoE-MLoRA arm against Base, and the paper's own MoE-MLoRA against MLoRA (the paper's Delta)."""
    comparisons = [(arm, "base") for arm in arms if arm.startswith("moe-mlora") and "base" in arms]
    if "moe-mlora" in arms and "mlora" in arms:
        comparisons.insert(1 if comparisons else 0, ("moe-mlora", "mlora"))
    return comparisons


def complete_arms(ok: pd.DataFrame, splits: list[str], models: list[str]) -> list[str]:
    """The arms recorded for every split and model: the paper's three first, then variants."""
    present = [arm for arm in dict.fromkeys(ok["arm"])
               if all(((ok.split == s) & (ok.model == m) & (ok.arm == arm)).any() for s in splits for m in models)]
    return [a for a in PAPER_ARMS if a in present] + sorted(a for a in present if a not in PAPER_ARMS)


def build_table1(records: pd.DataFrame, arms: list[str] | None = None, models: list[str] | None = None,
                 comparisons: list[Comparison] | None = None) -> Table1:
    ok = records[(records["status"] == "ok") & (records["k"] == 1)]
    if "arm" not in ok:
        ok = ok.assign(arm=ok["approach"])
    if models is not None:
        ok = ok[ok.model.isin(models)]
    splits = sorted(dict.fromkeys(ok["split"]), key=_paper_order)
    models = [m for m in PAPER_MODELS if m in set(ok["model"])]
    arms = arms if arms is not None else complete_arms(ok, splits, models)
    comparisons = comparisons if comparisons is not None else default_comparisons(arms)
    table = Table1(splits, models, arms, comparisons, dataset_of=dict(zip(ok["split"], ok["dataset"])))
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


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: controls the family-wise error rate at any alpha, under any dependence."""
    order = np.argsort(p_values)
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()


def _holm_correct(deltas: dict) -> None:
    keys = [key for key, cell in deltas.items() if cell.p_value is not None]
    for key, adjusted in zip(keys, holm([deltas[key].p_value for key in keys])):
        cell = deltas[key]
        deltas[key] = Cell(cell.mean, cell.ci95, cell.n, cell.p_value, adjusted)


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
                lines.append("| | p (Holm) | " + " | ".join(_p_text(d.p_holm) for d in deltas) + " | |")
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


def paper_comparison_markdown(table: Table1) -> str:
    """Our means beside the paper's values ('ours / paper'). Ours: ML-100K; the paper: ML-1M and real Taobao."""
    lines = []
    arms = [arm for arm in PAPER_ARMS if arm in table.arms]
    for split in table.splits:
        key = paper_key(split)
        if not key:
            continue
        synthetic = " — ours on SYNTHETIC data" if table.dataset_of[split].endswith("synthetic") else ""
        lines += [f"**{split} (ours)** vs the paper's **{key}**{synthetic}", "",
                  "| Arm | " + " | ".join(table.models) + " | Avg |", "|" + " --- |" * (len(table.models) + 2)]
        paper = PAPER_TABLE1[key]
        for arm in arms:
            ours = [table.cells[(split, arm, m)].mean for m in table.models]
            theirs = [paper[ARM_NAMES[arm]][PAPER_MODELS.index(m)] for m in table.models]
            lines.append(f"| {ARM_NAMES[arm]} | " + " | ".join(f"{o:.2f} / {t:.2f}" for o, t in zip(ours, theirs))
                         + f" | {_mean(ours):.2f} / {_mean(theirs):.2f} |")
        for comparison in [c for c in table.comparisons if c in (("moe-mlora", "base"), ("moe-mlora", "mlora"))]:
            reference = ARM_NAMES[comparison[1]]
            ours_delta = [table.deltas[(split, comparison, m)].mean for m in table.models]
            theirs_delta = [paper["MoE-MLoRA"][PAPER_MODELS.index(m)] - paper[reference][PAPER_MODELS.index(m)]
                            for m in table.models]
            lines.append(f"| {comparison_name(comparison)} | " + " | ".join(f"{o:+.2f} / {t:+.2f}" for o, t in zip(ours_delta, theirs_delta))
                         + f" | {_mean(ours_delta):+.2f} / {_mean(theirs_delta):+.2f} |")
        lines.append("")
    return "\n".join(lines)


def experts_frame(records: pd.DataFrame) -> pd.DataFrame:
    """Figure 2 data: mean and CI of the paper's MoE-MLoRA test WAUC per model and total number of experts."""
    moe = records[(records.status == "ok") & (records.arm == "moe-mlora")]
    rows = []
    for (split, model, k), group in moe.groupby(["split", "model", "k"]):
        cell = summarise(group["wauc"].to_numpy())
        rows.append({"split": split, "model": model, "k": k, "total_experts": int(k * group["n_domains"].iloc[0]),
                     "wauc": cell.mean, "ci95": cell.ci95, "seeds": cell.n})
    return pd.DataFrame(rows)


def experts_split(frame: pd.DataFrame) -> str:
    """The split Figure 2 is about: the one with the most values of k."""
    return frame.groupby("split")["k"].nunique().idxmax()


def plot_experts(frame: pd.DataFrame, base_wauc: float, path: Path) -> Path | None:
    """The paper's Figure 2: WAUC vs total experts, one line per model, error bars dodged, Base for reference."""
    if frame.empty:
        return None
    split = experts_split(frame)
    data = frame[frame.split == split]
    if data["k"].nunique() < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in PAPER_MODELS if m in set(data.model)]
    figure, axis = plt.subplots(figsize=(9, 4.8))
    step = min(0.8, 0.6 * min(np.diff(sorted(data.total_experts.unique())))) / max(len(models), 1)
    for index, model in enumerate(models):
        line = data[data.model == model].sort_values("total_experts")
        offset = (index - (len(models) - 1) / 2) * step
        axis.errorbar(line.total_experts + offset, line.wauc, yerr=line.ci95.fillna(0), marker="o", markersize=4,
                      capsize=2, linewidth=1, label=model)
    if not math.isnan(base_wauc):
        axis.axhline(base_wauc, color="black", linestyle="--", linewidth=1, label="Base (mean of models)")
    seeds = int(data.seeds.min())
    axis.set_xlabel("total number of experts (k per domain × domains)")
    axis.set_ylabel("test WAUC (%)")
    axis.set_xticks(sorted(data.total_experts.unique()))
    axis.set_title(f"MoE-MLoRA test WAUC vs number of experts, {split}\n"
                   f"mean over {seeds}+ seeds; bars: 95% CI (t); points dodged sideways per model", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
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


def ablation_table(records: pd.DataFrame) -> Table1 | None:
    """Every MoE-MLoRA arm (k = 1) against Base, on the models that have more than one such arm."""
    ok = records[(records.status == "ok") & (records.k == 1)]
    moe = ok[ok.approach == "moe-mlora"]
    arms_per_model = moe.groupby("model")["arm"].nunique()
    if arms_per_model.empty or arms_per_model.max() < 2:
        return None
    models = [m for m in PAPER_MODELS if arms_per_model.get(m, 0) == arms_per_model.max()]
    arms = ["base"] + [a for a in ["moe-mlora"] + sorted(set(moe.arm) - {"moe-mlora"})
                       if (ok[ok.model.isin(models)].arm == a).any()]
    return build_table1(ok[ok.arm.isin(arms)], arms=arms, models=models,
                        comparisons=[(arm, "base") for arm in arms if arm != "base"])


def diagnostics_frame(records: pd.DataFrame) -> pd.DataFrame:
    """Per split and MoE-MLoRA arm (k = 1), averaged over models and seeds: the gate's weight on own experts
    (and what uniform gives) and the three forward paths' validation and test WAUC."""
    moe = records[(records.status == "ok") & (records.k == 1) & (records.approach == "moe-mlora")]
    if moe.empty or "own_weight" not in moe:
        return pd.DataFrame()
    columns = ["own_weight", "uniform_own_weight"] + [f"{p}_{part}" for p in ("backbone", "own-experts", "mixture")
                                                      for part in ("valid", "test")]
    frame = moe.groupby(["split", "arm"])[columns].mean()
    frame["runs"] = moe.groupby(["split", "arm"]).size()
    frame.index = [f"{split} · {arm_name(arm)}" for split, arm in frame.index]
    frame.index.name = "split · arm"
    return frame


def write_report(results_dir: Path, out_dir: Path | None = None) -> dict[str, Path]:
    """report.md (+ table1.csv, figure2.png, records.csv) from every run recorded under results_dir."""
    out_dir = out_dir or results_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    records = load_records(results_dir)
    written: dict[str, Path] = {}
    if records.empty:
        older = len(records.attrs.get("older", []))
        raise FileNotFoundError(f"no run records of the current schema (*/result.json) under {results_dir}"
                                + (f"; {older} of an older schema: rerun the sweep to replace them" if older else ""))
    records.drop(columns=["machine"]).to_csv(out_dir / "records.csv", index=False)
    written["records"] = out_dir / "records.csv"
    sections = [f"# moe-mlora results ({results_dir.name})", ""]
    sections += _provenance(results_dir, records)
    ok = records[records.status == "ok"]
    if not ok[ok.k == 1].empty:
        table = build_table1(records)
        seeds = sorted(ok.seed.unique().tolist())
        sections += [f"## Table 1: test WAUC (%), mean ± 95% CI over seeds {seeds}", "", table1_markdown(table), "",
                     STATISTICS_NOTE.format(tests=table.tests), "",
                     "## Beside the paper (ours on ML-100K / the paper's ML-1M or Taobao)", "",
                     paper_comparison_markdown(table)]
        long = [{"split": s, "arm": a, "model": m, "wauc": c.mean, "ci95": c.ci95, "seeds": c.n}
                for (s, a, m), c in table.cells.items()]
        pd.DataFrame(long).to_csv(out_dir / "table1.csv", index=False)
        written["table1"] = out_dir / "table1.csv"
    ablation = ablation_table(records)
    if ablation is not None and len(ablation.arms) > 2:
        validation = pd.DataFrame({"mean validation WAUC (%)": ablation.valid_average}).rename(index=arm_name)
        validation.index.name = "arm"
        sections += ["## Ablation: MoE-MLoRA variants against Base, test WAUC (%)", "", table1_markdown(ablation), "",
                     STATISTICS_NOTE.format(tests=ablation.tests), "",
                     f"Mean validation WAUC per arm over the {ablation.valid_cells} (split, model, seed) cells that every arm "
                     "has (what a variant is chosen by; never test):", "",
                     markdown_table(validation), ""]
    diagnostics = diagnostics_frame(records)
    if not diagnostics.empty:
        sections += ["## What the gate does (MoE-MLoRA, k = 1; means over models and seeds)", "",
                     "own_weight: the gate's weight on a domain's own expert, averaged over domains (uniform_own_weight: "
                     "what a uniform gate gives). Then WAUC (%) of three forward paths of the final model: the "
                     "backbone alone, own-experts routing (the phase-2 model) and the gated mixture.", "",
                     markdown_table(diagnostics, digits=3), ""]
    experts = experts_frame(records)
    if not experts.empty:
        split = experts_split(experts)
        base = ok[(ok.split == split) & (ok.arm == "base") & ok.model.isin(set(experts.model))]
        figure = plot_experts(experts, float(base.wauc.mean()) if len(base) else float("nan"), out_dir / "figure2.png")
        if figure:
            written["figure2"] = figure
            pivot = experts[experts.split == split].pivot_table(index="model", columns="total_experts", values="wauc")
            pivot = pivot.reindex([m for m in PAPER_MODELS if m in pivot.index])
            pivot.columns = [f"{c} experts" for c in pivot.columns]
            if len(base):
                pivot["Base"] = base.groupby("model")["wauc"].mean()
            pivot.index.name = "model"
            sections += [f"## Figure 2: MoE-MLoRA test WAUC (%) vs total experts ({split})", "",
                         "![Figure 2](figure2.png)", "", markdown_table(pivot), ""]
    failed = records[records.status == "failed"]
    if not failed.empty:
        sections += ["## Failed runs", ""] + [f"- {r.split} {r.model} {r.arm} seed {r.seed}: {r.error}"
                                               for r in failed.itertuples()] + [""]
    (out_dir / "report.md").write_text("\n".join(sections) + "\n")
    written["report"] = out_dir / "report.md"
    return written


STATISTICS_NOTE = (
    "Cells: mean ± half-width of the 95% t-interval over seeds. Δ rows: mean of per-seed paired differences "
    "(same split, model and seed) ± its 95% t-interval; p (Holm): a two-sided paired t-test over seeds, "
    "Holm-corrected across all {tests} Δ cells of this table (family-wise error 5%); * marks p < 0.05 after "
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
    settings = records.groupby(["batch_order", "select_by"]).size()
    lines.append("- training: " + "; ".join(f"batch order {order}, selection by {select}: {count} runs"
                                            for (order, select), count in settings.items()))
    for machine in machines:
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


