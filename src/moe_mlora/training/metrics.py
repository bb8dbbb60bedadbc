"""Per-domain AUC and logloss, and the weighted AUC (WAUC) the paper reports (its Eq. 1).

WAUC = sum_i w_i * AUC_i, where w_i is domain i's share of the evaluated rows. A domain whose evaluated
rows hold one class has no AUC: it is listed in `excluded` and the other weights are renormalised.
Mean AUC is the unweighted mean of the per-domain AUCs: what the authors' code selects models by.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np
from sklearn.metrics import log_loss

from moe_mlora.auc import auc_or_none


class SelectBy(str, Enum):
    """The validation score that early stopping and model selection maximise."""

    WAUC = "wauc"  # the paper's reported metric
    MEAN_AUC = "mean-auc"  # the unweighted mean of per-domain AUCs, as the authors' code selects
    AUC = "auc"  # the AUC pooled over all rows, domains ignored (Scenario-Wise Rec's protocol)


@dataclass(frozen=True)
class DomainMetrics:
    domain: str
    rows: int
    positives: int
    auc: float | None
    logloss: float | None
    weight: float  # share in the WAUC (0 when excluded)


@dataclass(frozen=True)
class Evaluation:
    wauc: float
    auc: float | None  # over all rows, ignoring domains
    logloss: float
    domains: list[DomainMetrics]
    excluded: list[str]  # domains without an AUC (single class or no rows)

    @property
    def mean_auc(self) -> float:
        aucs = [d.auc for d in self.domains if d.auc is not None]
        return float(np.mean(aucs)) if aucs else float("nan")

    def score(self, select_by: SelectBy) -> float:
        chosen = SelectBy(select_by)
        if chosen is SelectBy.AUC:
            return self.auc if self.auc is not None else float("nan")
        return self.wauc if chosen is SelectBy.WAUC else self.mean_auc

    def to_dict(self) -> dict:
        return {**asdict(self), "mean_auc": self.mean_auc}

    @classmethod
    def from_dict(cls, data: dict) -> "Evaluation":
        return cls(data["wauc"], data["auc"], data["logloss"], [DomainMetrics(**d) for d in data["domains"]],
                   list(data["excluded"]))


def combine_scores(scores: dict[int, float], rows: dict[int, int], select_by: SelectBy) -> float:
    """One score from per-group AUCs (negative values mark groups without an AUC and are left out):
    their plain mean for mean AUC, else their row-weighted mean (per-expert groups have no pooled AUC)."""
    scored = [g for g, score in scores.items() if score >= 0 and rows.get(g, 0) > 0]
    if not scored:
        return float("nan")
    if SelectBy(select_by) is SelectBy.MEAN_AUC:
        return float(np.mean([scores[g] for g in scored]))
    total = sum(rows[g] for g in scored)
    return float(sum(rows[g] * scores[g] for g in scored) / total)


def evaluate_predictions(
    domains: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, domain_names: tuple[str, ...] | list[str]
) -> Evaluation:
    probabilities = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    labels = labels.astype(np.int64)
    entries = []
    for index, name in enumerate(domain_names):
        mask = domains == index
        rows = int(mask.sum())
        y, p = labels[mask], probabilities[mask]
        entries.append((name, rows, int(y.sum()), auc_or_none(y, p),
                        float(log_loss(y, p, labels=[0, 1])) if rows else None))
    scored_rows = sum(rows for _, rows, _, auc, _ in entries if auc is not None)
    per_domain = [
        DomainMetrics(name, rows, positives, auc, loss, rows / scored_rows if auc is not None else 0.0)
        for name, rows, positives, auc, loss in entries
    ]
    wauc = sum(d.weight * d.auc for d in per_domain if d.auc is not None) if scored_rows else float("nan")
    overall = auc_or_none(labels, probabilities)
    return Evaluation(
        wauc=float(wauc), auc=overall, logloss=float(log_loss(labels, probabilities, labels=[0, 1])),
        domains=per_domain, excluded=[d.domain for d in per_domain if d.auc is None],
    )
