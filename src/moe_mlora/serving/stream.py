"""Rows to score, read and written in chunks, so a file larger than memory streams through.

CSV/TSV files are read as text (every cell a string, as the vocabularies hold them); Parquet files by
record batches. Every problem is one DataError naming the file and, where known, the line and column.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from moe_mlora.data.readers import read_text_table, text_table_header
from moe_mlora.errors import ConfigError, DataError
from moe_mlora.files import atomic_path

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class Chunk:
    frame: pd.DataFrame
    first_row: int  # index of the chunk's first row in the file (0-based, header excluded)
    source: str  # the file's name, for messages
    line_offset: int  # row r of the file is reported as `unit` r + line_offset
    unit: str  # "line" (text files, header = line 1) or "row"

    def where(self, row_in_chunk: int) -> str:
        return f"{self.source}, {self.unit} {self.first_row + row_in_chunk + self.line_offset}"


def table_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise ConfigError(f"{path}: unsupported format '{suffix}' (use .csv, .tsv or .parquet)")


def count_rows(path: Path) -> int | None:
    """Rows of a Parquet file from its footer (free); None for text files (unknown without a pass)."""
    if table_format(path) == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return None


def read_chunks(path: Path, columns: list[str], rows: int, optional: tuple[str, ...] = ()) -> Iterator[Chunk]:
    """The named columns of `path` (and those of `optional` it has), `rows` at a time, in file order."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a table file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    present = header_columns(path)
    _missing(path, columns, present)
    wanted = [*columns, *(c for c in optional if c in present and c not in columns)]
    if table_format(path) == "parquet":
        yield from _parquet_chunks(path, wanted, rows)
    else:
        yield from _csv_chunks(path, wanted, rows)


def header_columns(path: Path) -> list[str]:
    if table_format(path) == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.ParquetFile(path).schema_arrow.names)
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    return text_table_header(path, CSV_SUFFIXES[path.suffix.lower()])


def _missing(path: Path, columns: list[str], present) -> None:
    absent = [column for column in columns if column not in present]
    if absent:
        raise DataError(f"{path}: missing column(s) {absent}; the run needs {columns}")


def _csv_chunks(path: Path, columns: list[str], rows: int) -> Iterator[Chunk]:
    first_row, pending = 0, []
    for frame in read_text_table(path, separator=CSV_SUFFIXES[path.suffix.lower()], columns=columns):
        pending.append(frame)
        while sum(len(f) for f in pending) >= rows:
            joined = pd.concat(pending, ignore_index=True)
            yield Chunk(joined.iloc[:rows].reset_index(drop=True), first_row, str(path), 2, "line")
            first_row += rows
            pending = [joined.iloc[rows:]]
    rest = pd.concat(pending, ignore_index=True) if pending else pd.DataFrame()
    if len(rest):
        yield Chunk(rest.reset_index(drop=True), first_row, str(path), 2, "line")


def _parquet_chunks(path: Path, columns: list[str], rows: int) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    schema = handle.schema_arrow
    for column in columns:
        kind = schema.field(column).type
        if pa.types.is_nested(kind):
            raise DataError(f"{path}, column '{column}': a {kind} column cannot be a categorical feature")
    first_row = 0
    for batch in handle.iter_batches(batch_size=rows, columns=columns):
        frame = batch.to_pandas()
        yield Chunk(frame, first_row, str(path), 0, "row")
        first_row += len(frame)


class ChunkWriter:
    """Appends scored chunks to a CSV or Parquet file; the file appears whole at the end, or not at all."""

    def __init__(self, temporary: Path, kind: str) -> None:
        self.temporary, self.kind = temporary, kind
        self._parquet = None
        self._csv = None

    def write(self, frame: pd.DataFrame) -> None:
        if self.kind == "csv":
            if self._csv is None:
                self._csv = open(self.temporary, "w", newline="", encoding="utf-8")
                frame.to_csv(self._csv, index=False)
            else:
                frame.to_csv(self._csv, index=False, header=False)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.temporary, table.schema)
        self._parquet.write_table(table)

    def close(self) -> None:
        if self._csv is not None:
            self._csv.close()
        if self._parquet is not None:
            self._parquet.close()


@contextmanager
def chunk_writer(path: Path, columns: list[str]) -> Iterator[ChunkWriter]:
    kind = table_format(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; name the output file")
    with atomic_path(path, keep_suffix=True) as temporary:
        writer = ChunkWriter(temporary, kind)
        try:
            yield writer
            if writer._csv is None and writer._parquet is None:  # no rows: still a valid, empty file
                writer.write(pd.DataFrame({column: pd.Series(dtype=object if column != "probability" else float)
                                           for column in columns}))
        finally:
            writer.close()
