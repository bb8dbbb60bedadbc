"""The one ROC AUC every metric, report and oracle here uses: sklearn's, or None where the rows hold a single
class (AUC is undefined there; callers say what they do instead: leave the domain out of WAUC, score the expert
by its logloss, print "-")."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def auc_or_none(labels, scores) -> float | None:
    labels = np.asarray(labels)
    if not 0 < labels.sum() < len(labels):
        return None
    return float(roc_auc_score(labels, scores))
