"""Strict readers: every malformed row is an error naming file, line and column, never a silent drop."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
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
    ends_with_newline: bool = False,
) -> pd.DataFrame:
    """Read a headerless (or headed) delimited file whose every row must have exactly `columns`.

    `ends_with_newline`: the file is published with a newline after every row (MovieLens), so one that ends
    without it was cut mid-line (its last row may still parse, e.g. a timestamp cut short): an error.

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
    if ends_with_newline and not _ends_with_newline(path):
        raise DataError(f"{path}, line {len(frame) + first_data_line - 1}: the file ends mid-line (cut short? "
                        "download it again)")
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
        empty = frame[column].isna().to_numpy() | (frame[column].to_numpy() == "")
        if empty.any():
            line = int(np.argmax(empty)) + first_data_line
            raise DataError(f"{path}, line {line}, column '{column}': missing value (row has too few fields?)")
    for column in integer_columns:
        frame[column] = _to_int(frame[column], path, column, first_data_line)
    return frame


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        if handle.tell() == 0:
            return True
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"


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


_ARROW_ROW = re.compile(r"Row #(\d+)")


def read_text_table(path: Path, *, separator: str, columns: list[str] | None = None,
                    block_bytes: int = 16 << 20) -> Iterator[pd.DataFrame]:
    """A headed CSV/TSV file as frames of text cells (empty cells ""), in file order, read strictly: a row
    with more or fewer fields than the header, a trailing delimiter, or bytes that are not UTF-8 are errors
    naming the line. `columns` (all must exist) limits what is kept; memory stays about `block_bytes`."""
    import pyarrow as pa
    import pyarrow.csv as pc

    names = text_table_header(path, separator)
    if columns is not None:
        absent = [column for column in columns if column not in names]
        if absent:
            raise DataError(f"{path}: missing column(s) {absent}; the file has {names}")
    kept = names if columns is None else columns
    try:
        reader = pc.open_csv(
            path,
            read_options=pc.ReadOptions(block_size=block_bytes, use_threads=False),  # serial: rows keep their numbers
            parse_options=pc.ParseOptions(delimiter=separator),
            convert_options=pc.ConvertOptions(column_types={name: pa.string() for name in kept}, include_columns=kept,
                                              strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
        for batch in reader:
            yield batch.to_pandas()
    except pa.ArrowInvalid as exc:
        raise DataError(_arrow_message(path, str(exc))) from None


def text_table_header(path: Path, separator: str) -> list[str]:
    """The header line's column names (strictly UTF-8)."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a table file")
    try:
        with open(path, "rb") as handle:
            start = handle.read(1 << 13)
            handle.seek(0)
            first = handle.readline()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    if b"\x00" in start:
        raise DataError(f"{path}: binary data (a NUL byte at byte {start.index(0)}), not a text table")
    if not first.strip():
        raise DataError(f"{path}: file is empty")
    try:
        header = first.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}, line 1: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    names = next(csv.reader([header], delimiter=separator))
    if len(set(names)) != len(names) or any(not name.strip() for name in names):
        raise DataError(f"{path}, line 1: the header needs distinct, non-empty column names, got {names}")
    return names


def _arrow_message(path: Path, message: str) -> str:
    found = _ARROW_ROW.search(message)
    where = f"{path}, line {found.group(1)}" if found else str(path)
    if "invalid UTF8" in message:
        return f"{where}: not UTF-8 text"
    if "Expected" in message and "columns" in message:
        detail = re.sub(r"^Row #\d+: ", "", message.split("CSV parse error: ", 1)[-1])
        counts = re.search(r"Expected (\d+) columns, got (\d+)", detail)
        hint = ("; a delimiter at the end of the row?" if counts and int(counts.group(2)) == int(counts.group(1)) + 1
                and detail.rstrip().endswith((",", "\t")) else "")
        return f"{where}: malformed row ({detail[:200]}{hint})"
    return f"{where}: unreadable ({message.splitlines()[0][:200]})"
