"""When do domain adapters help? Every approach on controlled multi-domain tables (moe_mlora.data.controlled)
across knob settings that cross from "no domain signal" to "strong", and the map of each method's gain over
Base against the oracle gap (what a perfect multi-domain method could gain).

A setting is a ControlledConfig; its table is generated once into `<results>/tables/<name>/` (with its
truth.json), and the grid's runs train on it as a user table. The report pairs every method with Base by
seed (same table, same seed) and plots the mean gain with its 95% t-interval against the setting's oracle
gap, one line per method and backbone; MoE-MLoRA also contributes its own-experts path (each domain
through its own experts: the phase-2 model for k = 1), read from its diagnostics.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from moe_mlora.experiments.grids import BASE_WITHOUT_DOMAIN
from moe_mlora.data import DatasetConfig
from moe_mlora.data.controlled import TABLE_FILE, TRUTH_FILE, ControlledConfig, write_controlled
from moe_mlora.run_config import RunConfig
from moe_mlora.experiments.figures import pyplot
from moe_mlora.experiments.statistics import summarise
from moe_mlora.models import ModelConfig
from moe_mlora.methods import PAPER_METHODS, arm_title
from moe_mlora.training.approaches import ApproachConfig
from moe_mlora.training.config import TrainConfig

# The default knob settings: heterogeneity from none to full at the base table (4 domains of 200 users x 150
# items, 25k rows each: 83% of the pairs), then one knob at a time moved at heterogeneity 0.5. The imbalanced
# table has 60k rows so that its largest domain (48%) still fits its 30k pairs.
BASE_SETTING = ControlledConfig()
SETTINGS: dict[str, ControlledConfig] = {
    **{f"h{h:g}": replace(BASE_SETTING, heterogeneity=h) for h in (0.0, 0.25, 0.5, 0.75, 1.0)},
    "h0.5-sparse": replace(BASE_SETTING, rows=30_000),
    "h0.5-imbalanced": replace(BASE_SETTING, imbalance=1.0, rows=60_000),
    "h0.5-disjoint-users": replace(BASE_SETTING, user_overlap=0.2),
    "h0.5-8-domains": replace(BASE_SETTING, n_domains=8, rows=200_000),
}

# How the map trains, unless the command line says otherwise: the paper's settings but batches of 256 and a
# floor of 10 epochs before early stopping. At 1,024, 60k training rows are 59 steps an epoch and Base DeepFM
# was still far from the truth when patience stopped it (heterogeneity 1, seed 1: 62.7 test WAUC with lr 0.01,
# against 72+ at batch 256 and lr 1e-3). With patience 3 and no floor, 6 of the first map's 90 Base runs stopped
# on the initial plateau (validation within 0.02 of its first epoch, stopped by epoch 6): DCN Base at h0.75
# seed 5 scored 53.7, and 67.1 with the floor (README, "Why the floor of 10 epochs").
CONTROLLED_TRAINING = {"batch_size": 256, "min_epochs": 10}

def write_tables(settings: dict[str, ControlledConfig], folder: Path) -> dict[str, Path]:
    """Each setting's table (generated once: an existing one with the same knobs is kept)."""
    tables = {}
    for name, config in settings.items():
        target = Path(folder) / name
        truth = target / TRUTH_FILE
        if not (truth.is_file() and json.loads(truth.read_text())["config"] == asdict(config)):
            write_controlled(config, target)
        tables[name] = target / TABLE_FILE
    return tables


def controlled_configs(tables: dict[str, Path], models: list[str], seeds: list[int], train: TrainConfig,
                       model_config: ModelConfig = ModelConfig(), methods: list[str] = ()) -> list[RunConfig]:
    """Base, MLoRA and MoE-MLoRA (then any other registered methods) for every table x model x seed (seeds
    outermost; Base first, for reuse)."""
    approaches = [(name, True) for name in list(PAPER_METHODS) + [m for m in methods if m not in PAPER_METHODS
                                                                  and m != BASE_WITHOUT_DOMAIN]]
    approaches += [("base", False)] if BASE_WITHOUT_DOMAIN in methods else []
    return [RunConfig(DatasetConfig("table", split_by="domain", features=("user", "item"), table_path=str(path),
                                    label_column="label", domain_as_feature=with_domain),
                      model, model_config, ApproachConfig.from_arm(approach), replace(train, seed=seed))
            for seed in seeds for approach, with_domain in approaches for path in tables.values() for model in models]


TABLES_FOLDER = "tables"  # where a controlled sweep keeps its tables, inside its results folder


def truth_of(table_path: str, tables_folder: Path | None = None) -> dict | None:
    """The truth.json beside a run's table; else the one of the same setting in `tables_folder` (shipped
    records keep the truths, not the tables, in records/tables/<setting>/)."""
    candidates = [Path(table_path).parent / TRUTH_FILE]
    if tables_folder is not None:
        candidates.append(Path(tables_folder) / Path(table_path).parent.name / TRUTH_FILE)
    for path in candidates:
        if path.is_file():
            return json.loads(path.read_text())
    return None


def gains(records: pd.DataFrame, tables_folder: Path | None = None) -> pd.DataFrame:
    """Per setting x model x method: the mean paired gain over Base (test WAUC points) with its 95% CI and
    the setting's oracle gap. Methods: every arm recorded (MoE-MLoRA's gated mixture among them) and
    MoE-MLoRA's own-experts path."""
    ok = records[(records.status == "ok") & records.table_path.notna()]
    rows = []
    for (table, model), group in ok.groupby(["table_path", "model"]):
        truth = truth_of(table, tables_folder)
        if truth is None:
            continue
        base = group[group.arm == "base"].set_index("seed")["wauc"]
        methods = {arm_title(arm): group[group.arm == arm].set_index("seed")["wauc"]
                   for arm in sorted(set(group.arm) - {"base"})}
        if "own-experts_test" in group:
            methods["MoE-MLoRA own-experts"] = group[group.arm == "moe-mlora"].set_index("seed")["own-experts_test"]
        for method, values in methods.items():
            seeds = sorted(set(values.dropna().index) & set(base.index))
            if not seeds:
                continue
            cell = summarise((values.loc[seeds] - base.loc[seeds]).to_numpy())
            rows.append({"setting": Path(table).parent.name, "model": model, "method": method,
                         "oracle_gap": truth["oracle_gap"] * 100, "blind_oracle_wauc": truth["shared_oracle_wauc"] * 100,
                         "gain": cell.mean, "ci95": cell.ci95,
                         "seeds": len(seeds), "base_wauc": float(base.loc[seeds].mean()),
                         **{k: truth["config"][k] for k in ("heterogeneity", "rows", "imbalance", "user_overlap",
                                                             "n_domains")},
                         "heterogeneity_axis": on_heterogeneity_axis(truth["config"])})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    # The heterogeneity axis first (settings that move no other knob), by heterogeneity; then the other knobs.
    order = ["heterogeneity_axis", "heterogeneity", "setting", "model", "method"]
    return frame.sort_values(order, ascending=[False, True, True, True, True], kind="stable").reset_index(drop=True)


def on_heterogeneity_axis(config: dict) -> bool:
    """Whether a table's knobs (its truth.json's config) are the base table's but for heterogeneity."""
    base = asdict(BASE_SETTING)
    return all(config[name] == base[name] for name in base if name != "heterogeneity")


def plot_map(frame: pd.DataFrame, path: Path) -> Path | None:
    """Gain over Base against the oracle gap, with 95% intervals: per method and backbone a line along the
    heterogeneity axis and a named square for each setting that moves another knob."""
    if frame.empty:
        return None
    plt = pyplot()

    figure, axis = plt.subplots(figsize=(8, 5))
    methods, models = sorted(frame.method.unique()), sorted(frame.model.unique())
    palette = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    for (method, model), group in frame.groupby(["method", "model"]):
        color = palette(methods.index(method) % palette.N)  # a colour per method
        style = ("-", "--", ":", "-.")[models.index(model) % 4]  # a line style per backbone
        line = group[group.heterogeneity_axis].sort_values("oracle_gap")  # the heterogeneity axis: a line
        axis.errorbar(line.oracle_gap, line.gain, yerr=line.ci95.fillna(0), marker="o", markersize=4, capsize=2,
                      linewidth=1, linestyle=style, color=color, label=f"{method} ({model})")
        for point in group[~group.heterogeneity_axis].itertuples():  # another knob moved: a lone marker, named
            axis.errorbar(point.oracle_gap, point.gain, yerr=0 if point.ci95 != point.ci95 else point.ci95,
                          marker="s", markersize=4, capsize=2, color=color, linestyle="none")
            axis.annotate(point.setting.removeprefix("h0.5-"), (point.oracle_gap, point.gain), fontsize=6,
                          xytext=(3, 3), textcoords="offset points", color=color)
    axis.axhline(0, color="black", linewidth=1)
    top = float(frame.oracle_gap.max())
    if math.isfinite(top) and top > 0:
        axis.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1, label="the oracle gap itself")
    axis.set_xlabel("oracle gap (test WAUC points a perfect per-domain model gains over a perfect domain-blind one)")
    axis.set_ylabel("gain over Base (test WAUC points, paired by seed)")
    axis.set_title("When do domain adapters help? Controlled multi-domain data", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def map_markdown(frame: pd.DataFrame) -> str:
    """One row per setting and backbone: the knobs, the oracle gap and each method's gain ± CI."""
    lines = ["| setting | model | heterogeneity | rows | imbalance | user overlap | domains | oracle gap | "
             "domain-blind oracle WAUC | Base WAUC | "
             + " | ".join(sorted(set(frame.method))) + " |"]
    lines.append("|" + " --- |" * (10 + frame.method.nunique()))
    for (setting, model), group in frame.groupby(["setting", "model"], sort=False):
        first = group.iloc[0]
        cells = []
        for method in sorted(set(frame.method)):
            row = group[group.method == method]
            cells.append("-" if row.empty else f"{row.gain.iloc[0]:+.2f}" + (
                f" ± {row.ci95.iloc[0]:.2f}" if row.ci95.iloc[0] is not None and not np.isnan(row.ci95.iloc[0]) else ""))
        lines.append(f"| {setting} | {model} | {first.heterogeneity:g} | {first.rows:,} | {first.imbalance:g} | "
                     f"{first.user_overlap:g} | {first.n_domains} | {first.oracle_gap:.2f} | {first.blind_oracle_wauc:.2f} | "
                     f"{first.base_wauc:.2f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)
