"""Any user table (CSV or Parquet) with categorical feature columns, a 0/1 label and a domain column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from moe_mlora.data.table import DOMAIN, LABEL, InteractionTable
from moe_mlora.errors import ConfigError, DataError


def load_table(path: Path, *, features: tuple[str, ...], label: str, domain: str) -> InteractionTable:
    """Read a user table. Missing feature values become their own category; a missing label or domain is an error."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if not features:
        raise ConfigError(f"{path}: name at least one feature column")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
        first_line, where = 0, "row"
    elif suffix in (".csv", ".tsv", ".txt"):
        try:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        except pd.errors.ParserError as exc:
            raise DataError(f"{path}: malformed row ({str(exc).strip().splitlines()[-1]})") from None
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: file is empty") from None
        first_line, where = 2, "line"  # line 1 is the header
    else:
        raise ConfigError(f"{path}: unsupported table format '{suffix}' (use .csv, .tsv or .parquet)")

    wanted = [*features, label, domain]
    unknown = [column for column in wanted if column not in frame.columns]
    if unknown:
        raise DataError(f"{path}: unknown column(s) {unknown}; the table has {list(frame.columns)}")
    if len(set(wanted)) != len(wanted):
        raise ConfigError(f"{path}: the label, domain and feature columns must be distinct, got {wanted}")
    if frame.empty:
        raise DataError(f"{path}: the table has no rows")

    labels = frame[label].astype(str).str.strip().to_numpy()
    valid = np.isin(labels, ("0", "1", "0.0", "1.0", "True", "False", "true", "false"))
    if not valid.all():
        row = int(np.argmax(~valid))
        raise DataError(f"{path}, {where} {row + first_line}, column '{label}': label must be 0 or 1, got {frame[label].iloc[row]!r}")
    label_values = np.isin(labels, ("1", "1.0", "True", "true")).astype(np.int8)

    domains = frame[domain]
    empty = (domains.isna() | (domains.astype(str).str.strip() == "")).to_numpy()
    if empty.any():
        row = int(np.argmax(empty))
        raise DataError(f"{path}, {where} {row + first_line}, column '{domain}': empty domain")

    out = pd.DataFrame({column: frame[column].astype(str).replace("", "<missing>") for column in features})
    out[LABEL] = label_values
    out[DOMAIN] = domains.astype(str).to_numpy()
    return InteractionTable(
        name=path.name, frame=out, feature_columns=list(features), domain_field=domain,
        domain_order=sorted(out[DOMAIN].unique()),
    )
