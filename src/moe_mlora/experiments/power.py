"""Tests with the power to see the paper's effect sizes: per split, backbone x seed pairs as replicates.

A Table-1 cell has 3 seeds; with Holm over its family (24 cells) its paired t-test detects, at 80% power,
only Δs of about 1.5 points, while the paper's Δs are 0.1-0.4. The paper's claims are about a split across
backbones ("MoE-MLoRA beats MLoRA on ML-1M by age"), so each claim is decided here by one test per split,
chosen before the reruns finished (CLAIMS):

* primary: a one-sample t-test over the per-backbone mean Δ (seeds averaged within a backbone), n = number of
  backbones. For a balanced design this is the test of the intercept in a mixed model with a random backbone
  effect: the unit of replication is the backbone, so it answers "on backbones like these", and it does not
  count a backbone's seeds as independent evidence;
* beside it (secondary): a paired t over all backbone x seed pairs (treats every pair as independent, so its
  p-value is too small when backbones differ), and a two-sided sign test over the pairs (how many are > 0).

Holm corrects the primary tests across the splits of one claim (its family). Each family reports its minimum
detectable effect (MDE): the smallest true mean Δ its primary test would detect with 80% power at the Holm
level of its first step (alpha / splits), given the spread of the backbone means it saw; and the same for a
single cell's test (3 seeds, alpha / cells). A family whose MDE exceeds the paper's Δ cannot speak to it.
Every Δ says which CPU models and torch versions made its two sides when they differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from moe_mlora.experiments.statistics import holm, paired_t

POWER, ALPHA = 0.8, 0.05
PAPER_SELECTION_ARM = "moe-mlora[selection=trained]"  # the paper's MoE-MLoRA: every expert and the gate train
GREEDY_ARM = "moe-mlora"  # the shipped rule: the untrained start competes and may be kept


@dataclass(frozen=True)
class Claim:
    text: str  # the paper's claim, in words
    arm: str
    reference: str


# Decided before the reruns finished: which Δ answers which of the paper's claims.
CLAIMS = (
    Claim("MoE-MLoRA beats MLoRA (the paper's Δ, Table 1)", PAPER_SELECTION_ARM, "mlora"),
    Claim("MoE-MLoRA beats its own backbone (Base)", PAPER_SELECTION_ARM, "base"),
    Claim("the paper's selection beats the greedy rule (ours, shipped)", PAPER_SELECTION_ARM, GREEDY_ARM),
)


@dataclass(frozen=True)
class SplitTest:
    split: str
    claim: Claim
    pairs: int  # backbone x seed pairs with both arms
    backbones: int
    mean: float  # mean Δ over pairs, points
    ci95: float | None  # 95% t-interval half-width over the backbone means
    p_value: float | None  # primary: t over the per-backbone mean Δs
    p_holm: float | None  # the same, Holm across the claim's splits
    p_pairs: float | None  # secondary: t over every pair as if independent
    positive: int  # pairs with Δ > 0
    p_sign: float | None  # two-sided sign test over the pairs (ties dropped)
    mde: float | None  # primary test's minimum detectable effect at 80% power, Holm's first-step level
    mde_cell: float | None  # one cell's paired t (its seeds) at alpha / cells, from the pooled seed spread
    machines: str  # "" when both sides ran on one CPU model and torch; else what each side ran on


def minimum_detectable_effect(sd: float, n: int, alpha: float, power: float = POWER) -> float | None:
    """The true mean a two-sided one-sample t-test with n values of spread sd detects with `power` at `alpha`:
    (t_{1-alpha/2} + t_{power}) * sd / sqrt(n), with n - 1 degrees of freedom (the usual approximation; the
    exact noncentral-t solution differs by a few percent and is numerically unstable at Holm's small alphas)."""
    if n < 2 or not sd > 0:
        return None
    df = n - 1
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * sd / math.sqrt(n))


def _sides(rows: pd.DataFrame) -> str:
    return ", ".join(sorted(set(rows["numerics"]))) if "numerics" in rows else "?"


def split_tests(records: pd.DataFrame, claims: tuple[Claim, ...] = CLAIMS) -> list[SplitTest]:
    """Every claim whose two arms are recorded, on every split both have, as SplitTests (Holm within a claim)."""
    ok = records[(records.status == "ok") & (records.k == 1)]
    if "numerics" not in ok:  # records without machine details (hand-made frames): one unnamed machine
        ok = ok.assign(numerics="?")
    results: list[SplitTest] = []
    for claim in claims:
        ours, theirs = ok[ok.arm == claim.arm], ok[ok.arm == claim.reference]
        if ours.empty or theirs.empty:
            continue
        keys = ["split", "model", "seed"]
        paired = ours.set_index(keys)[["wauc", "numerics"]].join(
            theirs.set_index(keys)[["wauc", "numerics"]], lsuffix="_arm", rsuffix="_ref", how="inner").reset_index()
        if paired.empty:
            continue
        paired["delta"] = paired.wauc_arm - paired.wauc_ref
        cells = paired.groupby(["split", "model"])
        seed_sd = math.sqrt(np.mean([g.delta.var(ddof=1) for _, g in cells if len(g) > 1])) if any(
            len(g) > 1 for _, g in cells) else float("nan")
        seeds = int(round(cells.size().median()))
        mde_cell = minimum_detectable_effect(seed_sd, seeds, ALPHA / max(cells.ngroups, 1))
        splits = [split for split in dict.fromkeys(paired.split)  # a split needs two backbones to be replicated
                  if paired[paired.split == split].model.nunique() >= 2]
        family = []
        for split in splits:
            rows = paired[paired.split == split]
            by_backbone = rows.groupby("model").delta.mean()
            n = len(by_backbone)
            p = paired_t(by_backbone.to_numpy())
            half = (float(stats.t.ppf(0.975, n - 1) * by_backbone.std(ddof=1) / math.sqrt(n)) if n >= 2 else None)
            p_pairs = paired_t(rows.delta.to_numpy())
            nonzero = rows.delta[rows.delta != 0]
            p_sign = float(stats.binomtest(int((nonzero > 0).sum()), len(nonzero)).pvalue) if len(nonzero) else None
            sides = {"arm": set(rows.numerics_arm), "reference": set(rows.numerics_ref)}
            machines = "" if sides["arm"] == sides["reference"] and len(sides["arm"]) == 1 else (
                f"{claim.arm}: {'; '.join(sorted(sides['arm']))} | {claim.reference}: {'; '.join(sorted(sides['reference']))}")
            family.append(SplitTest(split, claim, len(rows), n, float(rows.delta.mean()), half, p, None, p_pairs,
                                    int((rows.delta > 0).sum()), p_sign,
                                    minimum_detectable_effect(float(by_backbone.std(ddof=1)) if n >= 2 else float("nan"),
                                                              n, ALPHA / len(splits)),
                                    mde_cell, machines))
        tested = [i for i, t in enumerate(family) if t.p_value is not None]
        adjusted = dict(zip(tested, holm([family[i].p_value for i in tested]))) if tested else {}
        results += [SplitTest(**{**t.__dict__, "p_holm": adjusted.get(i)}) for i, t in enumerate(family)]
    return results


def _number(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def split_tests_markdown(tests: list[SplitTest]) -> str:
    """The split-level table, then one plain verdict per claim and split (from the numbers, never by hand)."""
    if not tests:
        return ""
    lines = ["| claim (arm − reference) | split | backbones | pairs | Δ (points) | p (backbone means) | p (Holm) "
             "| p (pairs, as independent) | Δ > 0 | p (sign) | MDE split | MDE cell |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in tests:
        lines.append(f"| {t.claim.text} ({t.claim.arm} − {t.claim.reference}) | {t.split} | {t.backbones} | {t.pairs} "
                     f"| {_number(t.mean, 3, signed=True)}" + (f" ± {_number(t.ci95, 3)}" if t.ci95 is not None else "")
                     + f" | {_p(t.p_value)} | {_p(t.p_holm)} | {_p(t.p_pairs)} | {t.positive} of {t.pairs} "
                     f"| {_p(t.p_sign)} | {_number(t.mde, 3)} | {_number(t.mde_cell, 3)} |")
    lines += ["", "Δ: mean over backbone × seed pairs (same split, backbone and seed), test WAUC points; ± the 95% "
              "t-interval over the per-backbone means. p (backbone means): the primary test, a one-sample t over the "
              "per-backbone mean Δ (the backbone is the unit: a random backbone effect); p (Holm): corrected across "
              "the claim's splits. p (pairs): a t over every pair as if independent (too small when backbones "
              "differ; shown, not used). Sign: how many pairs are above 0, with a two-sided sign test. MDE split: the "
              "smallest true Δ the primary test detects with 80% power at alpha / splits; MDE cell: the same for a "
              "single cell's paired t over its seeds at alpha / cells. These cover the variation of training seeds "
              "and of backbones on one fixed data split, not that of data splits or datasets.", ""]
    for t in tests:
        verdict = ("holds" if t.p_holm is not None and t.p_holm < ALPHA and t.mean > 0 else
                   "is contradicted" if t.p_holm is not None and t.p_holm < ALPHA else
                   "is not shown")
        power = (f"; the test could have detected {_number(t.mde, 3)} points" if t.mde is not None else "")
        lines.append(f"- {t.split}: \"{t.claim.text}\" {verdict} (Δ {_number(t.mean, 3, signed=True)} points over "
                     f"{t.pairs} pairs on {t.backbones} backbones, Holm p {_p(t.p_holm)}{power})."
                     + (f" **The sides ran on different machines**: {t.machines}." if t.machines else ""))
    return "\n".join(lines) + "\n"
