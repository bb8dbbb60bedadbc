"""Tables and plots from recorded runs, in the paper's layout.

Table 1: WAUC (%) per split x approach x model, mean +/- 95% confidence interval over seeds; the row
Delta = MoE-MLoRA - MLoRA per model (mean of per-seed paired differences, with a paired t-test); the
column Avg over models; and Avg(Delta) per model computed as the paper does: the mean over each dataset's
splits, then the mean over datasets, so every dataset counts equally whatever its number of splits.
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

APPROACH_NAMES = {"base": "Base", "mlora": "MLoRA", "moe-mlora": "MoE-MLoRA"}

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
            "approach": config.approach.approach, "k": config.approach.experts_per_domain, "seed": config.train.seed,
            "batch_order": config.train.batch_order, "select_by": config.train.select_by,
            "status": record.status, "wauc": record.test.wauc * 100 if record.ok else np.nan,
            "n_domains": record.n_domains, "seconds": record.seconds, "error": record.error,
            "commit": record.code.get("commit") or "unknown", "dirty": bool(record.code.get("dirty")),
            "machine": json.dumps(record.machine, sort_keys=True),
        })
    frame = pd.DataFrame(rows)
    frame.attrs.update(older=older, unreadable=unreadable)
    return frame


@dataclass(frozen=True)
class Cell:
    mean: float
    ci95: float | None  # half-width; None with one seed
    n: int
    p_value: float | None = None  # paired t-test (Delta cells only)

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


@dataclass
class Table1:
    splits: list[str]
    models: list[str]
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)  # (split, approach, model)
    deltas: dict[tuple[str, str], Cell] = field(default_factory=dict)  # (split, model)
    row_average: dict[tuple[str, str], float] = field(default_factory=dict)  # (split, approach|delta)
    avg_delta: dict[str, float] = field(default_factory=dict)  # model -> Avg(Delta)
    overall_avg_delta: float = float("nan")
    dataset_of: dict[str, str] = field(default_factory=dict)


def build_table1(records: pd.DataFrame) -> Table1:
    ok = records[(records["status"] == "ok") & (records["k"] == 1)]
    splits = sorted(dict.fromkeys(ok["split"]), key=_paper_order)
    models = [m for m in PAPER_MODELS if m in set(ok["model"])]
    table = Table1(splits, models, dataset_of=dict(zip(ok["split"], ok["dataset"])))
    for split in splits:
        for approach in APPROACH_NAMES:
            for model in models:
                rows = ok[(ok.split == split) & (ok.approach == approach) & (ok.model == model)]
                table.cells[(split, approach, model)] = summarise(rows["wauc"].to_numpy())
            table.row_average[(split, approach)] = _mean([table.cells[(split, approach, m)].mean for m in models])
        for model in models:
            table.deltas[(split, model)] = paired_delta(ok[(ok.split == split) & (ok.model == model)])
        table.row_average[(split, "delta")] = _mean([table.deltas[(split, m)].mean for m in models])
    datasets = list(dict.fromkeys(table.dataset_of[s] for s in splits))
    for model in models:
        per_dataset = [_mean([table.deltas[(s, model)].mean for s in splits if table.dataset_of[s] == d]) for d in datasets]
        table.avg_delta[model] = _mean(per_dataset)
    table.overall_avg_delta = _mean([_mean([table.row_average[(s, "delta")] for s in splits if table.dataset_of[s] == d])
                                     for d in datasets])
    return table


def _paper_order(split: str) -> tuple:
    """Datasets as found, then MovieLens splits as the paper lists them (gender, age, occupation), themes by count."""
    for index, field_name in enumerate(("gender", "age", "occupation")):
        if split.endswith(f"-{field_name}"):
            return (split.removesuffix(f"-{field_name}"), index)
    head, _, count = split.rpartition("-")
    return (head, int(count) if count.isdigit() else 0)


def paired_delta(rows: pd.DataFrame) -> Cell:
    """MoE-MLoRA - MLoRA over the seeds both have; a paired t-test when there are two seeds or more."""
    moe = rows[rows.approach == "moe-mlora"].set_index("seed")["wauc"]
    mlora = rows[rows.approach == "mlora"].set_index("seed")["wauc"]
    seeds = sorted(set(moe.index) & set(mlora.index))
    if not seeds:
        return Cell(float("nan"), None, 0)
    differences = (moe.loc[seeds] - mlora.loc[seeds]).to_numpy()
    cell = summarise(differences)
    p_value = None
    if len(seeds) >= 2 and np.std(differences) > 0:
        p_value = float(stats.ttest_rel(moe.loc[seeds], mlora.loc[seeds]).pvalue)
    return Cell(cell.mean, cell.ci95, cell.n, p_value)


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def table1_markdown(table: Table1) -> str:
    header = "| Dataset | Approach | " + " | ".join(m for m in table.models) + " | Avg |"
    lines = [header, "|" + " --- |" * (len(table.models) + 3)]
    for split in table.splits:
        label = split + (" (SYNTHETIC)" if table.dataset_of[split].endswith("synthetic") else "")
        for approach, name in APPROACH_NAMES.items():
            cells = [table.cells[(split, approach, m)].text() for m in table.models]
            lines.append(f"| {label} | {name} | " + " | ".join(cells) + f" | {table.row_average[(split, approach)]:.2f} |")
            label = ""
        deltas = [table.deltas[(split, m)].text(signed=True) for m in table.models]
        lines.append("| | Δ | " + " | ".join(deltas) + f" | {table.row_average[(split, 'delta')]:+.2f} |")
        p_values = [_p_text(table.deltas[(split, m)].p_value) for m in table.models]
        if any(p != "-" for p in p_values):
            lines.append("| | p (paired t) | " + " | ".join(p_values) + " | |")
    lines.append("| – | Avg(Δ) | " + " | ".join(f"{table.avg_delta[m]:+.2f}" for m in table.models)
                 + f" | {table.overall_avg_delta:+.2f} |")
    return "\n".join(lines)


def _p_text(p: float | None) -> str:
    return "-" if p is None else f"{p:.3f}"


def paper_comparison_markdown(table: Table1) -> str:
    """Our means beside the paper's values ('ours / paper'); the paper used ML-1M and the real Taobao logs."""
    lines = []
    for split in table.splits:
        key = paper_key(split)
        if not key:
            continue
        synthetic = " — ours on SYNTHETIC data" if table.dataset_of[split].endswith("synthetic") else ""
        lines += [f"**{split}** vs paper's **{key}**{synthetic}", "",
                  "| Approach | " + " | ".join(table.models) + " | Avg |", "|" + " --- |" * (len(table.models) + 2)]
        paper = PAPER_TABLE1[key]
        for approach, name in APPROACH_NAMES.items():
            ours = [table.cells[(split, approach, m)].mean for m in table.models]
            theirs = [paper[name][PAPER_MODELS.index(m)] for m in table.models]
            lines.append(f"| {name} | " + " | ".join(f"{o:.2f} / {t:.2f}" for o, t in zip(ours, theirs))
                         + f" | {_mean(ours):.2f} / {_mean(theirs):.2f} |")
        ours_delta = [table.deltas[(split, m)].mean for m in table.models]
        theirs_delta = [paper["MoE-MLoRA"][PAPER_MODELS.index(m)] - paper["MLoRA"][PAPER_MODELS.index(m)] for m in table.models]
        lines.append("| Δ | " + " | ".join(f"{o:+.2f} / {t:+.2f}" for o, t in zip(ours_delta, theirs_delta))
                     + f" | {_mean(ours_delta):+.2f} / {_mean(theirs_delta):+.2f} |")
        lines.append("")
    return "\n".join(lines)


def experts_frame(records: pd.DataFrame) -> pd.DataFrame:
    """Figure 2 data: mean and CI of MoE-MLoRA WAUC per model and total number of experts."""
    moe = records[(records.status == "ok") & (records.approach == "moe-mlora")]
    rows = []
    for (split, model, k), group in moe.groupby(["split", "model", "k"]):
        cell = summarise(group["wauc"].to_numpy())
        rows.append({"split": split, "model": model, "k": k, "total_experts": int(k * group["n_domains"].iloc[0]),
                     "wauc": cell.mean, "ci95": cell.ci95, "seeds": cell.n})
    return pd.DataFrame(rows)


def experts_split(frame: pd.DataFrame) -> str:
    """The split Figure 2 is about: the one with the most values of k."""
    return frame.groupby("split")["k"].nunique().idxmax()


def plot_experts(frame: pd.DataFrame, path: Path) -> Path | None:
    """The paper's Figure 2: WAUC vs total experts, one line per model (split with the most k values)."""
    if frame.empty:
        return None
    split = experts_split(frame)
    data = frame[frame.split == split]
    if data["k"].nunique() < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for model in [m for m in PAPER_MODELS if m in set(data.model)]:
        line = data[data.model == model].sort_values("total_experts")
        axis.errorbar(line.total_experts, line.wauc, yerr=line.ci95.fillna(0), marker="o", capsize=3, label=model)
    axis.set_xlabel("total number of experts")
    axis.set_ylabel("test WAUC (%)")
    axis.set_xticks(sorted(data.total_experts.unique()))
    axis.set_title(f"MoE-MLoRA: WAUC vs number of experts ({split})")
    axis.grid(alpha=0.3)
    axis.legend(ncol=2, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


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
        sections += ["## Table 1: test WAUC (%), mean ± 95% CI over seeds", "", table1_markdown(table), "",
                     "Δ = MoE-MLoRA − MLoRA (mean of per-seed paired differences). Avg(Δ) averages each dataset's "
                     "splits, then the datasets, as the paper does.", "",
                     "## Beside the paper (ours / paper)", "", paper_comparison_markdown(table)]
        long = [{"split": s, "approach": a, "model": m, "wauc": c.mean, "ci95": c.ci95, "seeds": c.n}
                for (s, a, m), c in table.cells.items()]
        pd.DataFrame(long).to_csv(out_dir / "table1.csv", index=False)
        written["table1"] = out_dir / "table1.csv"
    experts = experts_frame(records)
    figure = plot_experts(experts, out_dir / "figure2.png") if not experts.empty else None
    if figure:
        written["figure2"] = figure
        split = experts_split(experts)
        pivot = experts[experts.split == split].pivot_table(index="model", columns="total_experts", values="wauc")
        sections += [f"## Figure 2: MoE-MLoRA test WAUC (%) vs total experts ({split})", "", "![Figure 2](figure2.png)", "",
                     pivot.round(2).to_markdown() if _has_tabulate() else pivot.round(2).to_string(), ""]
    failed = records[records.status == "failed"]
    if not failed.empty:
        sections += ["## Failed runs", ""] + [f"- {r.split} {r.model} {r.approach} seed {r.seed}: {r.error}"
                                               for r in failed.itertuples()] + [""]
    (out_dir / "report.md").write_text("\n".join(sections) + "\n")
    written["report"] = out_dir / "report.md"
    return written


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
    if records.synthetic.any():
        lines.append("- rows marked SYNTHETIC ran on the generated Taobao stand-in, not the real logs")
    if records.attrs.get("older"):
        lines.append(f"- left out: {len(records.attrs['older'])} records of an older schema than {SCHEMA_VERSION} "
                     "(rerun the sweep to replace them)")
    if records.attrs.get("unreadable"):
        lines.append(f"- left out: {len(records.attrs['unreadable'])} unreadable records: "
                     + ", ".join(records.attrs["unreadable"]))
    return lines + [""]


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
