"""Per-domain statistics: rows, users, items, positive rate, sparsity."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from moe_mlora.data.table import DOMAIN, LABEL, InteractionTable


@dataclass(frozen=True)
class DomainStats:
    domain: str
    rows: int
    users: int | None
    items: int | None
    positive_rate: float
    sparsity: float | None  # 1 - rows / (users * items)


def domain_statistics(table: InteractionTable) -> list[DomainStats]:
    """One entry per domain in id order, then 'ALL'."""
    frame = table.frame
    has_ids = "user_id" in frame.columns and "item_id" in frame.columns
    out = []
    groups = frame.groupby(DOMAIN, sort=False, observed=True)
    for name in table.domain_order:
        out.append(_stats(name, groups.get_group(name), has_ids))
    out.append(_stats("ALL", frame, has_ids))
    return out


def _stats(name: str, frame: pd.DataFrame, has_ids: bool) -> DomainStats:
    rows = len(frame)
    users = int(frame["user_id"].nunique()) if has_ids else None
    items = int(frame["item_id"].nunique()) if has_ids else None
    sparsity = 1.0 - rows / (users * items) if has_ids and users and items else None
    return DomainStats(name, rows, users, items, float(np.mean(frame[LABEL].to_numpy())), sparsity)


def stats_as_records(stats: list[DomainStats]) -> list[dict]:
    return [asdict(entry) for entry in stats]
