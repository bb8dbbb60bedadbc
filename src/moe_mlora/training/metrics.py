"""Per-domain AUC and logloss, and the weighted AUC (WAUC) the paper reports (its Eq. 1).

WAUC = sum_i w_i * AUC_i, where w_i is domain i's share of the evaluated rows. A domain whose evaluated
rows hold one class has no AUC: it is listed in `excluded` and the other weights are renormalised.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score


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

    def to_dict(self) -> dict:
        return asdict(self)


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
        both_classes = rows > 0 and 0 < y.sum() < rows
        entries.append((name, rows, int(y.sum()), float(roc_auc_score(y, p)) if both_classes else None,
                        float(log_loss(y, p, labels=[0, 1])) if rows else None))
    scored_rows = sum(rows for _, rows, _, auc, _ in entries if auc is not None)
    per_domain = [
        DomainMetrics(name, rows, positives, auc, loss, rows / scored_rows if auc is not None else 0.0)
        for name, rows, positives, auc, loss in entries
    ]
    wauc = sum(d.weight * d.auc for d in per_domain if d.auc is not None) if scored_rows else float("nan")
    overall = float(roc_auc_score(labels, probabilities)) if 0 < labels.sum() < len(labels) else None
    return Evaluation(
        wauc=float(wauc), auc=overall, logloss=float(log_loss(labels, probabilities, labels=[0, 1])),
        domains=per_domain, excluded=[d.domain for d in per_domain if d.auc is None],
    )
