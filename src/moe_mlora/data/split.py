"""Per-domain, label-stratified train/validation/test assignment, exact and vectorised."""

from __future__ import annotations

import numpy as np

TRAIN, VALID, TEST = 0, 1, 2
PART_NAMES = {"train": TRAIN, "valid": VALID, "test": TEST}


def stratified_domain_split(
    domains: np.ndarray, labels: np.ndarray, *, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 123
) -> np.ndarray:
    """Assign each row to TRAIN/VALID/TEST so every (domain, label) stratum splits 60/20/20 (rounded).

    Rows are ranked at random within their stratum; the first round(0.6 n) go to train, up to round(0.8 n)
    to validation, the rest to test. Unlike sklearn's splitter this also handles strata of one row.
    """
    if not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must sum to 1, got {fractions}")
    strata = domains.astype(np.int64) * 2 + labels.astype(np.int64)
    noise = np.random.default_rng(seed).random(len(strata))
    order = np.lexsort((noise, strata))
    sorted_strata = strata[order]
    starts = np.searchsorted(sorted_strata, sorted_strata, side="left")
    sizes = np.searchsorted(sorted_strata, sorted_strata, side="right") - starts
    rank = np.arange(len(order)) - starts
    train_end = np.round(sizes * fractions[0])
    valid_end = np.round(sizes * (fractions[0] + fractions[1]))
    assignment = np.full(len(order), TEST, dtype=np.int8)
    assignment[rank < valid_end] = VALID
    assignment[rank < train_end] = TRAIN
    out = np.empty_like(assignment)
    out[order] = assignment
    return out


def time_split(times: np.ndarray, groups: np.ndarray, *, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> np.ndarray:
    """Within each group (a domain, or one group for all), the earliest rows train, the next validate and
    the latest test, in the given fractions (rounded as the stratified split); ties keep file order."""
    order = np.lexsort((np.arange(len(times)), times, groups))
    sorted_groups = groups[order]
    starts = np.searchsorted(sorted_groups, sorted_groups, side="left")
    sizes = np.searchsorted(sorted_groups, sorted_groups, side="right") - starts
    rank = np.arange(len(order)) - starts
    assignment = np.full(len(order), TEST, dtype=np.int8)
    assignment[rank < np.round(sizes * (fractions[0] + fractions[1]))] = VALID
    assignment[rank < np.round(sizes * fractions[0])] = TRAIN
    out = np.empty_like(assignment)
    out[order] = assignment
    return out
