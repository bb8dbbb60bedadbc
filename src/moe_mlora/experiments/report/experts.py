"""Figure 2 and the MoE-MLoRA diagnostics: WAUC against the number of experts, and what the gate and experts did."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from moe_mlora.experiments.figures import pyplot
from moe_mlora.experiments.report.frame import model_order
from moe_mlora.experiments.report.table1 import main_conditions, paper_moe_arm
from moe_mlora.experiments.statistics import summarise
from moe_mlora.methods import arm_title as arm_name
from moe_mlora.training.diagnostics import path_meaning

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
