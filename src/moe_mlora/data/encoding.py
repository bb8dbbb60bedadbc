"""The one encoder: raw rows (a pandas frame) to model inputs, for training in memory, out of core and serving.

An `Encoding` is what was fitted (moe_mlora.data.vocabulary, moe_mlora.data.feature_types); `encode`
applies it. The three paths differ only in how they fit and where rows come from: in memory, the whole
table at once (the paper's vocabulary over all rows, or the training rows' with an OOV row); out of core
(moe_mlora.data.streaming), counts over record batches, then each batch through `encode`; serving, the
run's saved encoding, each chunk through `encode`. Every value is compared as the string
`moe_mlora.data.vocabulary.as_strings` makes of it, on every path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from moe_mlora.data.feature_types import NumericColumn, encode_bags
from moe_mlora.data.vocabulary import Vocabulary, as_strings
from moe_mlora.errors import DataError

Where = Callable[[int], str]  # row index -> "file, line N" for messages


@dataclass(frozen=True)
class RawColumns:
    """The raw columns an encoding reads: the categorical features in field order (without the domain
    field), the domain column (None: rows without one, their domain unknown), the multi-valued columns.
    Numeric columns are named by the encoding's own statistics."""

    features: tuple[str, ...]
    domain: str | None
    bags: tuple[str, ...] = ()


@dataclass
class EncodedRows:
    codes: np.ndarray  # (N, F) int64, one code per categorical field
    domains: np.ndarray  # (N,) int64 domain ids; -1 for a domain that is not one of the encoding's
    dense: np.ndarray | None = None  # (N, 2 * numeric columns) float32
    bags: np.ndarray | None = None  # (N, bags, bag_length) int64, PAD-padded


@dataclass(frozen=True)
class Encoding:
    """How raw rows become model inputs: a vocabulary per categorical field (in the spec's order; with the
    domain as a feature, the last field's codes are the domain ids), the numeric columns' training
    statistics, and the multi-valued fields' vocabularies and padded length."""

    fields: tuple[Vocabulary, ...]
    numeric: tuple[NumericColumn, ...] = ()
    bags: tuple[Vocabulary, ...] = ()
    bag_length: int = 0
    separator: str = "|"

    def encode(self, frame: pd.DataFrame, columns: RawColumns, domain_names: Sequence[str], where: Where) -> EncodedRows:
        """The frame's rows as model inputs. A value a vocabulary without an OOV row never saw is an error
        naming its row and column (only a run with the paper's vocabulary over all rows can meet one)."""
        domains = (Vocabulary(tuple(map(str, domain_names)), oov=False).encode(frame[columns.domain])[0] if columns.domain
                   else np.full(len(frame), -1, dtype=np.int64))
        codes = np.zeros((len(frame), len(self.fields)), dtype=np.int64)
        for index, (column, vocabulary) in enumerate(zip(columns.features, self.fields)):
            codes[:, index], unseen = vocabulary.encode(frame[column])
            if unseen.any() and not vocabulary.oov:
                row = int(np.argmax(unseen))
                raise DataError(f"{where(row)}, column '{column}': value '{as_strings(frame[column]).iloc[row]}' "
                                "was never seen in training and this run has no out-of-vocabulary row (it used the "
                                "paper's vocabulary over all rows; train with --min-count 1 or more to serve new values)")
        if len(self.fields) > len(columns.features):  # the domain field: its code is the domain id
            codes[:, -1] = np.maximum(domains, 0)
        dense = (np.concatenate([column.transform(frame[column.name], where) for column in self.numeric], axis=1)
                 if self.numeric else None)
        bags = (np.stack([encode_bags(frame[name], vocabulary, self.separator, self.bag_length)
                          for name, vocabulary in zip(columns.bags, self.bags)], axis=1) if self.bags else None)
        return EncodedRows(codes, domains, dense, bags)

    def to_dict(self, field_names: tuple[str, ...], bag_names: tuple[str, ...]) -> dict:
        return {"fields": {name: v.to_dict() for name, v in zip(field_names, self.fields)},
                "numeric": [column.to_dict() for column in self.numeric],
                "bags": {name: v.to_dict() for name, v in zip(bag_names, self.bags)},
                "bag_length": self.bag_length, "separator": self.separator}

    @classmethod
    def from_dict(cls, data: dict, field_names: tuple[str, ...], bag_names: tuple[str, ...]) -> "Encoding":
        return cls(tuple(Vocabulary.from_dict(data["fields"][name]) for name in field_names),
                   tuple(NumericColumn(**column) for column in data.get("numeric", [])),
                   tuple(Vocabulary.from_dict(data["bags"][name]) for name in bag_names),
                   int(data.get("bag_length", 0)), data.get("separator", "|"))
