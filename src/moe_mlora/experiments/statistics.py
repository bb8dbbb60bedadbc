"""The statistics every report uses: a cell's mean with its 95% t-interval, and Holm's correction."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Cell:
    mean: float
    ci95: float | None  # half-width; None with one seed
    n: int
    p_value: float | None = None  # paired t-test over seeds (Delta cells only), uncorrected
    p_holm: float | None = None  # the same, Holm-corrected within its comparison's family (all its cells)
    p_holm_pooled: float | None = None  # the same, Holm-corrected across every Delta cell of the table

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


def paired_t(differences) -> float | None:
    """The one paired test of every report: a two-sided one-sample t over paired differences (arm − reference,
    matched by seed, by backbone or by pair), uncorrected.

    Fewer than two pairs: None (no test). Every difference exactly 0: p = 1 (there is nothing to find, and a
    planned test still counts in its Holm family). Equal non-zero differences (no spread, t undefined): None,
    said as untested rather than guessed."""
    values = np.asarray(differences, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return None
    if values.max() == values.min():  # exactly equal (a std of equal floats can round above 0)
        return 1.0 if values[0] == 0 else None
    return float(stats.ttest_1samp(values, 0).pvalue)
