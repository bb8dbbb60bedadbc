"""Feature types beyond one categorical id per field: numeric columns and multi-valued categorical columns.

* Numeric ("age"): standardised with the mean and standard deviation of the training rows only. A missing
  cell is explicit: its value is 0 (the training mean) and a second input, `<name>:missing`, is 1. So
  each numeric column gives two dense inputs. Text that is not a number is an error naming the cell.
* Multi-valued ("Action|Comedy"): each token is a code of the column's own vocabulary (fitted like the
  single-valued fields, with an OOV code 0 when min_count >= 1); rows are padded with -1 to the longest
  row, and the model mean-pools the tokens' embeddings into one field (moe_mlora.layers.embedding).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from moe_mlora.data.vocabulary import MISSING, Vocabulary, as_strings, distinct_strings, fit_counts
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
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):  # e.g. Parquet numbers
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isinf(values)
        text = None
    else:
        text = as_strings(column).str.strip()
        missing = text.isin(MISSING_TEXT).to_numpy()
        values = pd.to_numeric(text.where(~missing, "nan"), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(values) & ~missing | np.isinf(values)
    if bad.any():
        row = int(np.argmax(bad))
        cell = column.iloc[row] if text is None else text.iloc[row]
        raise DataError(f"{where(row)}, column '{name}': '{cell}' is not a number (numeric feature)")
    return values


def fit_numeric(column: pd.Series, name: str, training: np.ndarray, where: Callable[[int], str]) -> NumericColumn:
    values = parse_numbers(column, name, where)[training]
    known = values[~np.isnan(values)]
    if not len(known):
        raise DataError(f"{where(0).split(',')[0]}, column '{name}': no numeric value in the training rows")
    std = float(known.std())
    return NumericColumn(name, float(known.mean()), std if std > 0 else 1.0)


@dataclass(frozen=True)
class Tokens:
    """The tokens of a column's distinct cells, flat: `values[i]` belongs to distinct cell `parents[i]`;
    `cells` maps each row to its distinct cell. Split with pyarrow, once per distinct cell."""

    cells: np.ndarray
    n_distinct: int
    values: pa.Array  # strings, stripped, none empty
    parents: np.ndarray

    @classmethod
    def of(cls, column: pd.Series, separator: str) -> "Tokens":
        cells, strings = distinct_strings(column)
        text = pa.array(strings.where(strings != MISSING, "").to_numpy(dtype=object), type=pa.string())
        split = pc.split_pattern(text, separator)
        values = pc.utf8_trim_whitespace(pc.list_flatten(split))
        keep = pc.not_equal(values, "")
        parents = pc.list_parent_indices(split).to_numpy()[keep.to_numpy(zero_copy_only=False)]
        return cls(cells, len(strings), pc.filter(values, keep), parents)

    def counts(self, rows: np.ndarray | None = None) -> Counter:
        """How often each token occurs over the rows (those `rows` selects, a boolean mask, when given)."""
        cells = self.cells if rows is None else self.cells[rows]
        weights = np.bincount(cells, minlength=self.n_distinct)[self.parents]
        summed = pd.Series(weights).groupby(self.values.to_numpy(zero_copy_only=False)).sum()
        return Counter({token: int(count) for token, count in summed.items()})

    def longest(self) -> int:
        """The most tokens in one cell (at least 1)."""
        return max(int(np.bincount(self.parents).max()) if len(self.parents) else 0, 1)


def longest_bag(column: pd.Series, separator: str) -> int:
    """The padded length of a multi-valued field: the most tokens in one cell (at least 1)."""
    return Tokens.of(column, separator).longest()


def fit_bag_vocabulary(column: pd.Series, training: np.ndarray, min_count: int, separator: str) -> Vocabulary:
    """The tokens' vocabulary: over every row (min_count 0) or the training rows with an OOV code 0."""
    tokens = Tokens.of(column, separator)
    if min_count:
        return fit_counts(tokens.counts(training), min_count)
    return Vocabulary(tuple(sorted(tokens.counts())), oov=False)


def encode_bags(column: pd.Series, vocabulary: Vocabulary, separator: str, length: int) -> np.ndarray:
    """(N, length) int64 token codes, padded with PAD; tokens past `length` are dropped. Unseen tokens take
    the OOV code 0 (a vocabulary without one drops them)."""
    tokens = Tokens.of(column, separator)
    found = pc.index_in(tokens.values, value_set=pa.array(vocabulary.values, type=pa.string()))
    codes = pc.add(found, int(vocabulary.oov)).to_numpy(zero_copy_only=False)  # NaN where unseen
    seen = ~np.isnan(codes)
    codes = np.where(seen, codes, 0).astype(np.int64)
    parents = tokens.parents
    if not vocabulary.oov:  # unseen tokens are dropped and take no place
        codes, parents = codes[seen], parents[seen]
    position = np.arange(len(parents)) - np.searchsorted(parents, parents, side="left")
    keep = position < length
    distinct = np.full((tokens.n_distinct, length), PAD, dtype=np.int64)
    distinct[parents[keep], position[keep]] = codes[keep]
    return distinct[tokens.cells]
