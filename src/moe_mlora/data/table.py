"""The common shape every source is loaded into, before encoding: one row per (user, item) example."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from moe_mlora.errors import DataError

LABEL = "label"
DOMAIN = "domain"


@dataclass
class InteractionTable:
    """Raw categorical features, a 0/1 label and a domain per row.

    `frame` holds the columns named in `feature_columns`, plus `label` (int8) and `domain` (str).
    `domain_order` fixes domain ids: domain i is `domain_order[i]`.
    """

    name: str
    frame: pd.DataFrame
    feature_columns: list[str]
    domain_field: str
    domain_order: list[str]
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)
    numeric_columns: list[str] = field(default_factory=list)  # raw text, parsed by moe_mlora.data.feature_types
    bag_columns: list[str] = field(default_factory=list)  # multi-valued, raw text
    source: str = ""  # the file, for messages
    first_line: int = 0  # row r of the frame is `unit` r + first_line of the file
    unit: str = "row"

    def __post_init__(self) -> None:
        wanted = [*self.feature_columns, *self.numeric_columns, *self.bag_columns, LABEL, DOMAIN]
        missing = [c for c in wanted if c not in self.frame.columns]
        if missing:
            raise DataError(f"{self.name}: table lacks column(s) {', '.join(missing)}")
        labels = self.frame[LABEL].to_numpy()
        if not np.isin(labels, (0, 1)).all():
            row = int(np.argmax(~np.isin(labels, (0, 1))))
            raise DataError(f"{self.name}: row {row}: label must be 0 or 1, got {labels[row]!r}")
        unknown = set(self.frame[DOMAIN].unique()) - set(self.domain_order)
        if unknown:
            raise DataError(f"{self.name}: domain values {sorted(map(str, unknown))[:5]} missing from domain_order")
        empty = [d for d in self.domain_order if d not in set(self.frame[DOMAIN].unique())]
        if empty:
            raise DataError(f"{self.name}: domain(s) {empty} have no rows")

    def where(self, row: int) -> str:
        return f"{self.source or self.name}, {self.unit} {row + self.first_line}"

    @property
    def display_name(self) -> str:
        return f"{self.name} [SYNTHETIC]" if self.synthetic else self.name

    @property
    def n_domains(self) -> int:
        return len(self.domain_order)

    def domain_ids(self) -> np.ndarray:
        lookup = {value: index for index, value in enumerate(self.domain_order)}
        return self.frame[DOMAIN].map(lookup).to_numpy(dtype=np.int64)
