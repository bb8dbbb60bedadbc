"""What a model needs to know about its input: categorical fields, their sizes, and the domains."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureSpec:
    """Categorical fields in column order of the code matrix; domain i is `domain_names[i]`."""

    field_names: tuple[str, ...]
    cardinalities: tuple[int, ...]
    domain_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.field_names) != len(self.cardinalities):
            raise ValueError("one cardinality per field")
        if not self.field_names:
            raise ValueError("a model needs at least one field")

    @property
    def n_fields(self) -> int:
        return len(self.field_names)

    @property
    def n_domains(self) -> int:
        return len(self.domain_names)

    @property
    def offsets(self) -> np.ndarray:
        """Start of each field's rows in one shared embedding table."""
        return np.concatenate([[0], np.cumsum(self.cardinalities)[:-1]]).astype(np.int64)

    @property
    def total_cardinality(self) -> int:
        return int(sum(self.cardinalities))

    def to_dict(self) -> dict:
        return {
            "field_names": list(self.field_names),
            "cardinalities": list(self.cardinalities),
            "domain_names": list(self.domain_names),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSpec":
        return cls(tuple(data["field_names"]), tuple(data["cardinalities"]), tuple(data["domain_names"]))
