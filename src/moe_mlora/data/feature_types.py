"""Feature types beyond one categorical id per field: numeric columns and multi-valued categorical columns.

* Numeric ("age"): standardised with the mean and standard deviation of the training rows only. A missing
  cell is explicit: its value is 0 (the training mean) and a second input, `<name>:missing`, is 1. So
  each numeric column gives two dense inputs. Text that is not a number is an error naming the cell.
* Multi-valued ("Action|Comedy"): each token is a code of the column's own vocabulary (fitted like the
  single-valued fields, with an OOV code 0 when min_count >= 1); rows are padded with -1 to the longest
  row, and the model mean-pools the tokens' embeddings into one field (moe_mlora.layers.embedding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from moe_mlora.data.vocabulary import MISSING, Vocabulary, as_strings
from moe_mlora.errors import DataError

MISSING_TEXT = {"", MISSING, "nan", "NaN", "NA", "null", "None"}
PAD = -1


@dataclass(frozen=True)
class NumericColumn:
    name: str
    mean: float
    std: float

    def transform(self, column: pd.Series, where: Callable[[int], str]) -> np.ndarray:
        """(N, 2) float32: the standardised value (0 where missing) and the missing flag."""
        values = parse_numbers(column, self.name, where)
        missing = np.isnan(values)
        scaled = np.where(missing, 0.0, (values - self.mean) / self.std)
        return np.stack([scaled, missing.astype(np.float64)], axis=1).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)


def parse_numbers(column: pd.Series, name: str, where: Callable[[int], str]) -> np.ndarray:
    """Float64 values with NaN for missing cells; a cell that is text is an error naming it."""
    text = as_strings(column).str.strip()
    missing = text.isin(MISSING_TEXT).to_numpy()
    values = pd.to_numeric(text.where(~missing, "nan"), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & ~missing | np.isinf(values)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{where(row)}, column '{name}': '{text.iloc[row]}' is not a number (numeric feature)")
    return values


def fit_numeric(column: pd.Series, name: str, training: np.ndarray, where: Callable[[int], str]) -> NumericColumn:
    values = parse_numbers(column, name, where)[training]
    known = values[~np.isnan(values)]
    if not len(known):
        raise DataError(f"{where(0).split(',')[0]}, column '{name}': no numeric value in the training rows")
    std = float(known.std())
    return NumericColumn(name, float(known.mean()), std if std > 0 else 1.0)


def tokens(column: pd.Series, separator: str) -> pd.Series:
    """Each cell's tokens (an empty cell has none)."""
    text = as_strings(column)
    return text.where(text != MISSING, "").str.split(separator, regex=False).map(
        lambda parts: [part.strip() for part in parts if part.strip()])


def fit_bag_vocabulary(column: pd.Series, training: np.ndarray, min_count: int, separator: str) -> Vocabulary:
    """The tokens' vocabulary: over every row (min_count 0) or the training rows with an OOV code 0."""
    split = tokens(column, separator)
    if min_count:
        counts = pd.Series([t for row in split[training] for t in row], dtype=object).value_counts()
        return Vocabulary(tuple(sorted(counts.index[counts >= min_count])), oov=True)
    return Vocabulary(tuple(sorted({t for row in split for t in row})), oov=False)


def encode_bags(column: pd.Series, vocabulary: Vocabulary, separator: str, length: int | None = None) -> np.ndarray:
    """(N, length) int64 token codes, padded with PAD; tokens past `length` are dropped (length: the longest
    row when None). Unseen tokens take the OOV code 0 (a vocabulary without one drops them)."""
    split = tokens(column, separator)
    lookup = {value: index + int(vocabulary.oov) for index, value in enumerate(vocabulary.values)}
    unseen = 0 if vocabulary.oov else None
    coded = [[c for c in (lookup.get(t, unseen) for t in row) if c is not None] for row in split]
    length = length if length is not None else max((len(row) for row in coded), default=1) or 1
    out = np.full((len(coded), length), PAD, dtype=np.int64)
    for index, row in enumerate(coded):
        out[index, :min(len(row), length)] = row[:length]
    return out
