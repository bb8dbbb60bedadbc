"""What a model needs to know about its input: categorical fields, their sizes, and the domains."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureSpec:
    """Categorical fields in column order of the code matrix; domain i is `domain_names[i]`. Optionally,
    numeric columns (two dense inputs each: value and missing flag) and multi-valued fields (bags of codes,
    each pooled into one more embedded field after the categorical ones)."""

    field_names: tuple[str, ...]
    cardinalities: tuple[int, ...]
    domain_names: tuple[str, ...]
    numeric_names: tuple[str, ...] = ()
    bag_names: tuple[str, ...] = ()
    bag_cardinalities: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("field_names", "cardinalities", "domain_names", "numeric_names", "bag_names", "bag_cardinalities"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.field_names) != len(self.cardinalities) or len(self.bag_names) != len(self.bag_cardinalities):
            raise ValueError("one cardinality per field")
        if not self.field_names:
            raise ValueError("a model needs at least one field")

    @property
    def n_fields(self) -> int:
        return len(self.field_names)

    @property
    def n_dense(self) -> int:
        """Dense inputs: each numeric column's standardised value and its missing flag."""
        return 2 * len(self.numeric_names)

    @property
    def n_bags(self) -> int:
        return len(self.bag_names)

    @property
    def n_embedded(self) -> int:
        """Fields the interaction layers see: the categorical ones, then one pooled field per bag."""
        return self.n_fields + self.n_bags

    @property
    def bag_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.bag_cardinalities)[:-1]]).astype(np.int64) if self.n_bags else \
            np.zeros(0, dtype=np.int64)

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
        data = {"field_names": list(self.field_names), "cardinalities": list(self.cardinalities),
                "domain_names": list(self.domain_names)}
        if self.numeric_names or self.bag_names:  # older readers and files keep their shape
            data.update(numeric_names=list(self.numeric_names), bag_names=list(self.bag_names),
                        bag_cardinalities=list(self.bag_cardinalities))
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSpec":
        return cls(**{key: tuple(value) for key, value in data.items()})
