import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from moe_mlora.training.metrics import evaluate_predictions


def test_wauc_weights_domain_aucs_by_row_share():
    domains = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    labels = np.array([0, 1, 0, 1, 0, 0, 1, 1, 0, 1])
    probs = np.array([0.1, 0.9, 0.6, 0.4, 0.2, 0.3, 0.8, 0.1, 0.5, 0.7])
    result = evaluate_predictions(domains, labels, probs, ("a", "b"))
    auc_a = 0.75  # pairs (pos, neg): (0.9>0.1), (0.9>0.6), (0.4>0.1), (0.4<0.6) -> 3/4
    auc_b = roc_auc_score(labels[4:], probs[4:])
    assert result.domains[0].auc == pytest.approx(auc_a)
    assert result.wauc == pytest.approx(0.4 * auc_a + 0.6 * auc_b)
    assert result.excluded == []


def test_single_class_domain_is_excluded_and_weights_renormalised():
    domains = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    labels = np.array([0, 1, 0, 1, 1, 1, 1, 0, 0, 1])
    probs = np.array([0.1, 0.9, 0.2, 0.8, 0.5, 0.6, 0.7, 0.4, 0.6, 0.3])
    result = evaluate_predictions(domains, labels, probs, ("a", "b", "c"))
    assert result.excluded == ["b"]
    assert result.domains[1].auc is None and result.domains[1].weight == 0.0
    auc_c = roc_auc_score(labels[6:], probs[6:])
    assert result.wauc == pytest.approx(0.5 * 1.0 + 0.5 * auc_c)
    assert sum(d.weight for d in result.domains) == pytest.approx(1.0)


def test_logloss_and_overall_auc_are_reported():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    probs = rng.random(200)
    domains = rng.integers(0, 3, 200)
    result = evaluate_predictions(domains, labels, probs, ("a", "b", "c"))
    assert result.auc == pytest.approx(roc_auc_score(labels, probs))
    expected = -np.mean(labels * np.log(probs) + (1 - labels) * np.log(1 - probs))
    assert result.logloss == pytest.approx(expected, rel=1e-6)


def test_the_one_auc_is_none_for_rows_of_one_class_and_sklearns_otherwise():
    from sklearn.metrics import roc_auc_score

    from moe_mlora.auc import auc_or_none

    assert auc_or_none([1, 1, 1], [0.2, 0.5, 0.9]) is None and auc_or_none([], []) is None
    assert auc_or_none([0, 1, 1, 0], [0.1, 0.8, 0.4, 0.5]) == roc_auc_score([0, 1, 1, 0], [0.1, 0.8, 0.4, 0.5])
