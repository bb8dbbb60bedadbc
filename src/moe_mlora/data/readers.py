"""Strict readers: every malformed row is an error naming file, line and column, never a silent drop."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from moe_mlora.errors import DataError

_PANDAS_LINE = re.compile(r"line (\d+)")


def read_delimited(
    path: Path,
    *,
    separator: str,
    columns: list[str],
    integer_columns: tuple[str, ...] = (),
    encoding: str = "utf-8",
    header: bool = False,
) -> pd.DataFrame:
    """Read a headerless (or headed) delimited file whose every row must have exactly `columns`.

    A two-character separator such as MovieLens-1M's '::' is read with the fast C parser by splitting
    on ':' and checking that the in-between columns are empty, so no row can be mis-split unnoticed.
    """
    doubled = len(separator) == 2 and separator[0] == separator[1]
    raw_names = _interleave_gaps(columns) if doubled else columns
    try:
        frame = pd.read_csv(
            path,
            sep=separator[0] if doubled else separator,
            header=0 if header else None,
            names=raw_names,
            dtype=str,
            keep_default_na=False,
            encoding=encoding,
            engine="c",
            quoting=3,  # csv.QUOTE_NONE: MovieLens titles contain quotes that are not quoting
        )
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed row ({_first_line(str(exc))})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not {encoding} text ({exc.reason} at byte {exc.start})") from None
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    first_data_line = 2 if header else 1
    if doubled:
        gaps = [name for name in raw_names if name.startswith("__gap")]
        bad = np.zeros(len(frame), dtype=bool)
        for gap in gaps:
            bad |= frame[gap].to_numpy() != ""
        if bad.any():
            line = int(np.argmax(bad)) + first_data_line
            raise DataError(f"{path}, line {line}: malformed row (expected {len(columns)} '{separator}'-separated fields)")
        frame = frame[columns]
    for column in columns:
        empty = frame[column].to_numpy() == ""
        if empty.any():
            line = int(np.argmax(empty)) + first_data_line
            raise DataError(f"{path}, line {line}, column '{column}': missing value (row has too few fields?)")
    for column in integer_columns:
        frame[column] = _to_int(frame[column], path, column, first_data_line)
    return frame


def _interleave_gaps(columns: list[str]) -> list[str]:
    names: list[str] = []
    for index, column in enumerate(columns):
        if index:
            names.append(f"__gap{index}")
        names.append(column)
    return names


def _to_int(values: pd.Series, path: Path, column: str, first_line: int) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    invalid = numbers.isna().to_numpy() | (numbers.to_numpy(dtype=float, na_value=np.nan) % 1 != 0)
    if invalid.any():
        row = int(np.argmax(invalid))
        raise DataError(
            f"{path}, line {row + first_line}, column '{column}': expected an integer, got {values.iloc[row]!r}"
        )
    return numbers.astype(np.int64)


def _first_line(message: str) -> str:
    message = message.strip().splitlines()[-1] if message.strip() else message
    return message.removeprefix("Error tokenizing data. C error: ")


def read_lines_split(path: Path, *, separator: str, n_fields: int, encoding: str) -> list[list[str]]:
    """Split a small file whose last field may itself contain the separator's characters (titles)."""
    try:
        text = path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(separator)
        if len(fields) != n_fields:
            raise DataError(f"{path}, line {number}: malformed row (expected {n_fields} fields, found {len(fields)})")
        rows.append(fields)
    return rows
