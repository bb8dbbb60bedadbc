"""Any user table (CSV or Parquet) with categorical feature columns, a 0/1 label and a domain column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from moe_mlora.data.readers import read_text_table, text_table_header
from moe_mlora.data.table import DOMAIN, LABEL, InteractionTable
from moe_mlora.data.vocabulary import as_strings
from moe_mlora.errors import ConfigError, DataError


def binary_labels(column: pd.Series, where) -> np.ndarray:
    """0/1 (or true/false) cells as int8; `where(row)` locates a bad cell in the message."""
    labels = column.astype(str).str.strip().to_numpy()
    valid = np.isin(labels, ("0", "1", "0.0", "1.0", "True", "False", "true", "false"))
    if not valid.all():
        row = int(np.argmax(~valid))
        raise DataError(f"{where(row)}: label must be 0 or 1, got {column.iloc[row]!r}")
    return np.isin(labels, ("1", "1.0", "True", "true")).astype(np.int8)


def _check_columns(path: Path, wanted: list[str], present: list[str]) -> None:
    unknown = [column for column in wanted if column not in present]
    if unknown:
        raise DataError(f"{path}: unknown column(s) {unknown}; the table has {list(present)}")


def _parquet_columns(path: Path, wanted: list[str]) -> list[str]:
    """The file's columns; a list- or struct-typed column among `wanted` is refused (not silently stringified)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    for column in wanted:
        if column in schema.names and pa.types.is_nested(schema.field(column).type):
            raise DataError(f"{path}, column '{column}': a {schema.field(column).type} column cannot be a "
                            "categorical feature, label or domain")
    return schema.names


def load_table(path: Path, *, features: tuple[str, ...], label: str, domain: str, numeric: tuple[str, ...] = (),
               multi_valued: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> InteractionTable:
    """Read a user table. Missing feature values become their own category; a missing label or domain is an error.
    Numeric, multi-valued and `extra` columns (a split's time or part column) are kept as text."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a table file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if not features:
        raise ConfigError(f"{path}: name at least one feature column")
    suffix = path.suffix.lower()
    wanted = [*features, *numeric, *multi_valued, *extra, label, domain]
    if suffix in (".parquet", ".pq"):
        _check_columns(path, wanted, _parquet_columns(path, wanted))
        try:
            frame = pd.read_parquet(path, columns=list(dict.fromkeys(wanted)))
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
        first_line, where = 0, "row"
    elif suffix in (".csv", ".tsv", ".txt"):
        separator = "\t" if suffix == ".tsv" else ","
        _check_columns(path, wanted, text_table_header(path, separator))
        frames = list(read_text_table(path, separator=separator, columns=list(dict.fromkeys(wanted))))
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(dict.fromkeys(wanted)))
        first_line, where = 2, "line"  # line 1 is the header
    else:
        raise ConfigError(f"{path}: unsupported table format '{suffix}' (use .csv, .tsv or .parquet)")

    if len(set(wanted)) != len(wanted):
        raise ConfigError(f"{path}: the label, domain and feature columns must be distinct, got {wanted}")
    if frame.empty:
        raise DataError(f"{path}: the table has no rows")

    label_values = binary_labels(frame[label], lambda row: f"{path}, {where} {row + first_line}, column '{label}'")

    domains = frame[domain]
    empty = (domains.isna() | (domains.astype(str).str.strip() == "")).to_numpy()
    if empty.any():
        row = int(np.argmax(empty))
        raise DataError(f"{path}, {where} {row + first_line}, column '{domain}': empty domain")

    out = pd.DataFrame({column: as_strings(frame[column]) for column in [*features, *numeric, *multi_valued, *extra]})
    out[LABEL] = label_values
    out[DOMAIN] = domains.astype(str).to_numpy()
    return InteractionTable(
        name=path.name, frame=out, feature_columns=list(features), domain_field=domain,
        domain_order=sorted(out[DOMAIN].unique()), numeric_columns=list(numeric), bag_columns=list(multi_valued),
        source=str(path), first_line=first_line, unit=where,
    )
