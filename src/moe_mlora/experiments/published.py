"""Published tables our runs are set beside, one mechanism for all (`PublishedTable`): the paper's own Table 1
(WAUC per split x arm x backbone, `MOE_MLORA_TABLE1`; the report's paper sections read it) and Scenario-Wise Rec's
MovieLens-1M benchmark (overall AUC and logloss per method, `report --published scenario-wise-ml1m`).

Scenario-Wise Rec (Li et al., KDD 2024 draft; 3 seeds) reports the test AUC and logloss pooled over all test
rows of ML-1M with three age domains (examples/scenario_wise_ml1m.py and examples/scenario-wise-ml1m.yaml
set that protocol up here). `published_markdown` sets every method's mean over seeds, with its 95%
t-interval, beside their number, and tests each method against Base on the same seeds (paired t over
seeds, Holm-corrected across the methods: one family). Where a method lies beyond the tolerance, it lists
the known differences between their protocol and ours, which a gap has to be read against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from moe_mlora.errors import ConfigError
from moe_mlora.experiments.statistics import holm, paired_t, summarise
from moe_mlora.methods import METHODS, arm_title
from moe_mlora.models.registry import PAPER_MODELS

# Overall test AUC and logloss, as the issue quotes their table (None: not given).
SCENARIO_WISE_ML1M: dict[str, tuple[float, float | None]] = {
    "shared-bottom": (0.8095, 0.5228), "mmoe": (0.8086, 0.5218), "ple": (0.8091, 0.5257), "star": (0.8096, 0.5258),
    "sar-net": (0.8092, None), "m2m": (0.8115, 0.5213), "adasparse": (0.8108, 0.5205), "adaptdhm": (0.8083, None),
    "epnet": (0.8097, 0.5215), "ppnet": (0.8063, 0.5257),
}


@dataclass(frozen=True)
class PublishedTable:
    """A published table to set our runs beside: its caption; its numbers, per method (overall test AUC,
    logloss or None: `results`) and/or per cell (a row per split, an arm's title, one value per column:
    `cells`, `columns`); and the known differences between its protocol and the one our runs follow."""

    caption: str
    results: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    differences: tuple[str, ...] = ()
    protocol: tuple[tuple[str, object], ...] = ()  # (records column, the value every run must have)
    protocol_help: str = ""  # how to make runs of that protocol
    cells: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # row -> arm title -> one per column
    columns: tuple[str, ...] = ()

    def row_of(self, split: str) -> str:
        """Our split label -> the table's row ('movielens-100k-gender' -> 'movielens-gender'); '' for none."""
        for key in self.cells:
            family, _, rest = key.partition("-")
            if split.startswith(family) and split.endswith(rest):
                return key
        return ""

    def cell(self, row: str, arm_title: str, column: str) -> float:
        """The table's number for (row, arm, column), NaN where it has none."""
        values = self.cells.get(row, {}).get(arm_title)
        return values[self.columns.index(column)] if values is not None and column in self.columns else math.nan

    def check(self, records: pd.DataFrame) -> None:
        """A one-line ConfigError unless every finished run follows the table's protocol: numbers of another
        dataset, backbone or selection set beside the table would read as a gap of method."""
        ok = records[records.status == "ok"] if "status" in records else records
        for column, wanted in self.protocol:
            wrong = ok[ok[column] != wanted] if column in ok else ok
            if len(wrong):
                found = ", ".join(sorted({str(v) for v in wrong[column]})) if column in wrong else "missing"
                raise ConfigError(f"{len(wrong)} of {len(ok)} runs are not of the protocol of {self.caption}: "
                                  f"{column} is {found}, not {wanted}. {self.protocol_help}")


# The paper's Table 1 (WAUC %, ML-1M and real Taobao), for side-by-side comparison.
MOE_MLORA_TABLE1 = PublishedTable("the paper's Table 1 (test WAUC %)", cells={
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
}, columns=PAPER_MODELS)

PUBLISHED = {"scenario-wise-ml1m": PublishedTable(
    "Scenario-Wise Rec's MovieLens-1M table (overall test AUC and logloss)", SCENARIO_WISE_ML1M, (
        "training length: their script's default is one epoch (--epoch 1) and the table's epoch count is not "
        "published; ours train up to the run's epoch cap with early stopping (docs/results/scenario-wise-one-epoch "
        "and scenario-wise-two-epochs rerun the grid with the cap at one and two epochs)",
        "the tower: every method here sits on the same DNN backbone, a ReLU tower without batch normalisation; "
        "their methods have their own MLP sizes, with batch normalisation",
        "the split: an unstratified random 80/10/10 split of the same kind as theirs, not their rows",
        "age: standardised here, min-max scaled there (one linear rescaling of one dense input)",
        "the domain id: a field of every arm here, Base included; the loader their script runs (the second "
        "definition in run_movielens_rank_multi_domain.py) leaves it out for SharedBottom, MMoE, PLE and STAR "
        "(`--methods base-without-domain` runs our Base without it)",
        "their numbers: as published in the KDD'24 draft of their paper (3 seeds)",
    ), protocol=(("dataset", "table"), ("n_domains", 3), ("model", "dnn"), ("select_by", "auc")),
    protocol_help="Make them with examples/scenario_wise_ml1m.py and examples/scenario-wise-ml1m.yaml.")}
TOLERANCE = 0.003  # the bar: within 0.003 of the published overall AUC


def published_markdown(records: pd.DataFrame, published: PublishedTable = PUBLISHED["scenario-wise-ml1m"]) -> str:
    """Per method: our overall test AUC and logloss (mean ± 95% CI over seeds) beside the published ones;
    the Δ against Base on the same seeds with Holm-corrected p-values; where any method lies beyond the
    tolerance, the known differences of protocol."""
    ok = records[(records.status == "ok")]
    if ok.empty:
        return "No finished runs.\n"
    base = ok[ok.arm == "base"].set_index("seed")
    rows, tests = [], []
    for arm in sorted(ok.arm.unique(), key=lambda a: (a != "base", list(METHODS).index(a) if a in METHODS else 99, a)):
        runs = ok[ok.arm == arm]
        auc, logloss = summarise(runs.auc.to_numpy()), summarise(runs.logloss.to_numpy())
        paper_auc, paper_logloss = published.results.get(arm.partition("[")[0], (None, None))  # a variant: its method's
        paired = runs.set_index("seed").auc.sub(base.auc).dropna() if arm != "base" and not base.empty else pd.Series(dtype=float)
        p = paired_t(paired.to_numpy())
        rows.append([arm, auc, logloss, paper_auc, paper_logloss, summarise(paired.to_numpy()) if len(paired) else None, p])
        if p is not None:
            tests.append(len(rows) - 1)
    adjusted = dict(zip(tests, holm([rows[i][6] for i in tests]))) if tests else {}
    lines = ["| Method | n | AUC (ours) | AUC (published) | ours − published | logloss (ours) | logloss (published) "
             "| Δ AUC vs Base (same seeds) | p (Holm) |", "|---|---|---|---|---|---|---|---|---|"]
    beyond = []
    for index, (arm, auc, logloss, paper_auc, paper_logloss, delta, _) in enumerate(rows):
        title = arm_title(arm)
        gap = "-" if paper_auc is None else f"{auc.mean / 100 - paper_auc:+.4f}"
        if paper_auc is not None and abs(auc.mean / 100 - paper_auc) > TOLERANCE:
            beyond.append(title)
            gap += f" (beyond {TOLERANCE})"
        cells = [title, str(auc.n), _four(auc), _maybe(paper_auc), gap, _four(logloss, scale=1), _maybe(paper_logloss),
                 _four(delta, signed=True), f"{adjusted[index]:.3g}" if index in adjusted else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "AUC and logloss pooled over all test rows (domains ignored), as Scenario-Wise Rec reports them; "
              "± is the 95% t-interval over seeds. Δ is paired by seed against Base; its p-value is a paired t-test "
              "over seeds, Holm-corrected across the methods (one family). Published: the issue's quotation of their "
              "ML-1M table (3 seeds); a method's variant (its settings in brackets) is set beside its method's number."]
    if beyond and published.differences:
        lines += ["", f"Beyond {TOLERANCE} of the published AUC: {', '.join(beyond)}. The known differences between "
                  "their protocol and ours, against which such a gap is to be read:", ""]
        lines += [f"- {difference}" for difference in published.differences]
    return "\n".join(lines) + "\n"


def _maybe(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _four(cell, scale: float = 100, signed: bool = False) -> str:
    """A cell of percentages (or raw values, scale=1) as a 4-decimal fraction, with its interval."""
    if cell is None or cell.n == 0 or np.isnan(cell.mean):
        return "-"
    value = f"{cell.mean / scale:+.4f}" if signed else f"{cell.mean / scale:.4f}"
    return value + (f" ± {cell.ci95 / scale:.4f}" if cell.ci95 is not None else "")
