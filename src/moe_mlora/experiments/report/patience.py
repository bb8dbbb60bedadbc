"""The patience sample: runs that differ only in early stopping's patience, paired."""

from __future__ import annotations

import pandas as pd

from moe_mlora.experiments.statistics import paired_t
from moe_mlora.methods import arm_title as arm_name


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
    p = paired_t(delta.to_numpy())
    return ("\n".join(lines) + f"\n\nOver all {len(pairs)} pairs the longer patience changed the test WAUC in "
            f"{int(changed.sum())}, by {delta.mean():+.3f} points on average"
            + (f" (paired t over the pairs: p {p:.3g})" if p is not None else "") + ". Test WAUC points.")
