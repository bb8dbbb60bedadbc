"""Each categorical field's vocabulary: raw value -> code, saved with a run so new rows encode as training did.

Two protocols, chosen by `DatasetConfig.min_count`:

* 0, the paper's (MovieLens, Taobao by default): the vocabulary holds every value of every row, sorted,
  exactly as the authors' code builds it. There is no out-of-vocabulary row; a value never seen anywhere
  cannot be scored by such a run.
* n >= 1 (a user's own table by default, n = 2): the vocabulary is fitted on the training rows only. Code 0
  is the field's out-of-vocabulary (OOV) row; values seen fewer than n times in the training rows are
  folded into it, so it is *trained* on the rarest values' rows, the rows most like a value never seen.
  Values first met in validation, test or serving map to it.

Values are kept as strings (how CSV rows arrive); `encode` takes any column and compares the strings
`as_strings` makes of its cells, on every path (moe_mlora.data.encoding).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

MISSING = "<missing>"  # an empty cell in a user table is a category of its own


@dataclass(frozen=True)
class Vocabulary:
    values: tuple[str, ...]  # the known values in code order (after the OOV row when there is one)
    oov: bool  # True: code 0 is the out-of-vocabulary row and values[i] has code i + 1

    @property
    def size(self) -> int:
        """Rows this field needs in the embedding table."""
        return len(self.values) + int(self.oov)

    @cached_property
    def _lookup(self) -> dict[str, int]:
        start = int(self.oov)
        return {value: start + index for index, value in enumerate(self.values)}

    def encode(self, column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(codes, unseen): codes as int64, with unseen values at the OOV code 0 (or -1 without an OOV row)."""
        cells, strings = distinct_strings(column)
        found = strings.map(self._lookup)
        unseen = found.isna().to_numpy()
        filled = found.fillna(0 if self.oov else -1).to_numpy(dtype=np.int64)
        return filled[cells], unseen[cells]

    def to_dict(self) -> dict:
        return {"oov": self.oov, "values": list(self.values)}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        return cls(tuple(data["values"]), bool(data["oov"]))


def as_strings(column: pd.Series) -> pd.Series:
    """Raw values as the strings a vocabulary holds; empty and missing cells become MISSING."""
    strings = column.astype(object).where(column.notna(), MISSING).astype(str)
    return strings.mask(strings.str.strip() == "", MISSING)


def distinct_strings(column: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """(cells, strings): each cell's index into `strings`, the column's distinct values as `as_strings` makes
    them. The string work is done once per distinct value, not per row (ids repeat: a chunk of a million
    ratings holds a few thousand users)."""
    cells, uniques = pd.factorize(column)  # missing cells get -1
    strings = as_strings(pd.Series(uniques, dtype=object))
    if (cells < 0).any():
        cells = np.where(cells < 0, len(strings), cells)
        strings = pd.concat([strings, pd.Series([MISSING])], ignore_index=True)
    return cells, strings


def string_counts(column: pd.Series) -> dict[str, int]:
    """How often each value occurs, keyed by its string (values with the same string are one value)."""
    cells, strings = distinct_strings(column)
    counts = pd.Series(np.bincount(cells, minlength=len(strings)), index=strings.to_numpy())
    return counts.groupby(level=0).sum().to_dict()


def fit_all_rows(column: pd.Series) -> Vocabulary:
    """The paper's protocol: every value of every row, sorted in the column's own order (numbers as numbers);
    missing cells, if any, are the category MISSING, last."""
    codes, uniques = pd.factorize(column, sort=True)
    values = dict.fromkeys(as_strings(pd.Series(uniques)))
    if (codes < 0).any():
        values.setdefault(MISSING)
    return Vocabulary(tuple(values), oov=False)


def fit_training_rows(column: pd.Series, training: np.ndarray, min_count: int) -> Vocabulary:
    """Values seen at least `min_count` times in the training rows, sorted as strings; the rest share code 0."""
    return fit_counts(string_counts(column[training]), min_count)


def fit_counts(counts: dict[str, int], min_count: int) -> Vocabulary:
    """The same from counts gathered elsewhere (out of core, batch by batch)."""
    return Vocabulary(tuple(sorted(value for value, count in counts.items() if count >= min_count)), oov=True)
