"""From a typed dataset config to encoded, split int tensors, cached on disk by the config's hash."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from moe_mlora.batches import TensorPart
from moe_mlora.data.sources import source_of
from moe_mlora.data.config import (
    SPLIT_NAMES, DatasetConfig,
)
from moe_mlora.data.encoding import Encoding, RawColumns
from moe_mlora.data.feature_types import NumericColumn, fit_bag_vocabulary, fit_numeric, longest_bag
from moe_mlora.data.split import PART_NAMES, stratified_domain_split, time_split
from moe_mlora.data.streaming import stream_dataset
from moe_mlora.data.table import DOMAIN, LABEL, InteractionTable
from moe_mlora.data.vocabulary import Vocabulary, as_strings, fit_all_rows, fit_training_rows
from moe_mlora.errors import DataError
from moe_mlora.features import FeatureSpec
from moe_mlora.paths import resolve_cache_dir, resolve_data_dir

log = logging.getLogger(__name__)

MIN_DOMAIN_ROWS = 50

@dataclass
class EncodedDataset:
    name: str
    spec: FeatureSpec
    codes: np.ndarray  # (N, F) int64, per-field codes
    domains: np.ndarray  # (N,) int64
    labels: np.ndarray  # (N,) int8
    split: np.ndarray  # (N,) int8: 0 train, 1 valid, 2 test
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)
    vocabularies: tuple[Vocabulary, ...] = ()  # one per field of spec, in its order
    domain_column: str = DOMAIN  # the raw table's column that names each row's domain
    dense: np.ndarray | None = None  # (N, spec.n_dense) float32
    bags: np.ndarray | None = None  # (N, spec.n_bags, length) int64, -1 pads
    numeric: tuple[NumericColumn, ...] = ()  # the training rows' statistics per numeric column
    bag_vocabularies: tuple[Vocabulary, ...] = ()
    separator: str = "|"

    def training_domain_counts(self) -> np.ndarray:
        return np.bincount(self.domains[self.split == PART_NAMES["train"]], minlength=self.spec.n_domains)

    @property
    def encoding(self) -> Encoding:
        """What serving needs to encode new rows exactly as these were."""
        return Encoding(self.vocabularies, self.numeric, self.bag_vocabularies,
                        0 if self.bags is None else self.bags.shape[2], self.separator)

    def part(self, which: str) -> TensorPart:
        mask = self.split == PART_NAMES[which]
        return TensorPart(
            torch.from_numpy(self.codes[mask]),
            torch.from_numpy(self.domains[mask]),
            torch.from_numpy(self.labels[mask].astype(np.float32)),
            dense=None if self.dense is None else torch.from_numpy(self.dense[mask]),
            bags=None if self.bags is None else torch.from_numpy(self.bags[mask]),
        )

    @property
    def display_name(self) -> str:
        return f"{self.name} [SYNTHETIC]" if self.synthetic else self.name


def load_interactions(config: DatasetConfig, data_dir: Path | None = None, cache_dir: Path | None = None) -> InteractionTable:
    """The raw (unencoded) table a config describes, from its source (moe_mlora.data.sources)."""
    return source_of(config.dataset).load(config, resolve_data_dir(data_dir), resolve_cache_dir(cache_dir))


def encode(table: InteractionTable, config: DatasetConfig) -> EncodedDataset:
    """The split (stratified 60/20/20 by default), then integer codes per field from each field's vocabulary
    (over all rows, as the paper's code does, or over the training rows with an OOV row: see
    DatasetConfig.min_count), and the numeric and multi-valued features, fitted on the training rows."""
    labels = table.frame[LABEL].to_numpy(dtype=np.int8)
    if len(labels) and labels.min() == labels.max():
        raise DataError(f"{table.name}: every row has label {int(labels[0])}; a CTR model needs both clicks and "
                        "non-clicks (check the label column)")
    split = assign_split(table, config)
    training = split == PART_NAMES["train"]
    if not training.any():
        raise DataError(f"{table.name}: the split leaves no training rows")
    names = list(table.feature_columns)
    vocabularies = [fit_training_rows(table.frame[name], training, config.min_count) if config.min_count
                    else fit_all_rows(table.frame[name]) for name in names]
    if config.domain_as_feature:  # the domain field's code is the domain id; every domain is known
        vocabularies.append(Vocabulary(tuple(table.domain_order), oov=False))
        names.append(DOMAIN)
    numeric = tuple(fit_numeric(table.frame[name], name, training, table.where) for name in table.numeric_columns)
    bag_vocabularies = tuple(fit_bag_vocabulary(table.frame[name], training, config.min_count, config.multi_separator)
                             for name in table.bag_columns)
    bag_length = max((longest_bag(table.frame[name], config.multi_separator) for name in table.bag_columns), default=0)
    encoding = Encoding(tuple(vocabularies), numeric, bag_vocabularies, bag_length, config.multi_separator)
    rows = encoding.encode(table.frame, RawColumns(tuple(table.feature_columns), DOMAIN, tuple(table.bag_columns)),
                           table.domain_order, table.where)
    spec = FeatureSpec(tuple(names), tuple(v.size for v in vocabularies), tuple(table.domain_order),
                       tuple(table.numeric_columns), tuple(table.bag_columns), tuple(v.size for v in bag_vocabularies))
    notes = list(table.notes) + domain_warnings(rows.domains, labels, split, spec.domain_names)
    return EncodedDataset(table.name, spec, rows.codes, rows.domains, labels, split, table.synthetic, notes,
                          tuple(vocabularies), table.domain_field, rows.dense, rows.bags, numeric, bag_vocabularies,
                          config.multi_separator)


def assign_split(table: InteractionTable, config: DatasetConfig) -> np.ndarray:
    """Each row's part: the stratified random split, the latest rows by time, or the table's own labels."""
    kind, column, scope = config.split_parts
    domains = table.domain_ids()
    if kind == "random":
        return stratified_domain_split(domains, table.frame[LABEL].to_numpy(dtype=np.int8), seed=config.split_seed)
    if kind == "time":
        times = parse_times(table.frame[column], column, table.where)
        if len(times) and times.min() == times.max():
            raise DataError(f"{table.where(0)}, column '{column}': every row has the same time "
                            f"('{table.frame[column].iloc[0]}'), so a time split would follow the file's order; "
                            "use --split random or column:COLUMN")
        return time_split(times, np.zeros_like(domains) if scope == "global" else domains)
    parts = as_strings(table.frame[column]).str.strip().str.lower().map(SPLIT_NAMES)
    unknown = parts.isna().to_numpy()
    if unknown.any():
        row = int(np.argmax(unknown))
        raise DataError(f"{table.where(row)}, column '{column}': '{table.frame[column].iloc[row]}' is not a part; "
                        "use train, valid (or validation) or test")
    assignment = parts.to_numpy(dtype=np.int8)
    missing = [name for name, index in PART_NAMES.items() if not (assignment == index).any()]
    if missing:
        raise DataError(f"{table.source or table.name}, column '{column}': no row is labelled {' or '.join(missing)}; "
                        "a column split needs train, valid and test rows")
    return assignment




def parse_times(column: pd.Series, name: str, where) -> np.ndarray:
    """Numbers (e.g. Unix seconds) or dates/times as int64-comparable values; a cell that is neither is an error."""
    text = as_strings(column).str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    numeric = numbers.notna().any()  # a numeric time column (e.g. Unix seconds): every cell must be a number
    parsed = numbers if numeric else pd.to_datetime(text, errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{where(row)}, column '{name}': '{text.iloc[row]}' is neither a number nor a date/time")
    return parsed.to_numpy(dtype=np.float64) if numeric else parsed.astype("int64").to_numpy().astype(np.float64)


def table_notes(table: InteractionTable, config: DatasetConfig) -> list[str]:
    """What `train` warns about a table (its loader's notes and the domains too small to learn or score)."""
    domains, labels = table.domain_ids(), table.frame[LABEL].to_numpy(dtype=np.int8)
    split = assign_split(table, config)
    return list(table.notes) + domain_warnings(domains, labels, split, tuple(table.domain_order))


def domain_warnings(domains: np.ndarray, labels: np.ndarray, split: np.ndarray, names: tuple[str, ...]) -> list[str]:
    """Domains too small to learn or evaluate are reported, not hidden."""
    warnings = []
    for index, name in enumerate(names):
        in_domain = domains == index
        if in_domain.sum() < MIN_DOMAIN_ROWS:
            warnings.append(f"domain '{name}' has only {int(in_domain.sum())} rows (< {MIN_DOMAIN_ROWS})")
        for part, part_id in PART_NAMES.items():
            part_labels = labels[in_domain & (split == part_id)]
            if len(part_labels) and part_labels.min() == part_labels.max():
                warnings.append(f"domain '{name}' has a single label class in {part} ({int(part_labels[0])}): no AUC there")
    return warnings


def prepare_dataset(
    config: DatasetConfig, data_dir: Path | None = None, cache_dir: Path | None = None, *, use_cache: bool = True
) -> EncodedDataset:
    """Encoded and split dataset, from the cache when this exact config was prepared before."""
    cache_dir = resolve_cache_dir(cache_dir)
    if config.out_of_core:

        return stream_dataset(config, cache_dir / f"stream-{_table_identity(config)}")
    path = _cache_path(config, data_dir, cache_dir)
    if use_cache and path.is_file() and config.dataset != "table":
        try:
            return _load_cached(path)
        except Exception as exc:  # the cache is only a shortcut: a damaged file is rebuilt, never fatal
            log.warning("%s: unreadable cache file (%s); rebuilding it", path, exc)
    dataset = encode(load_interactions(config, data_dir, cache_dir), config)
    for note in dataset.notes:
        log.warning("%s: %s", dataset.display_name, note)
    if use_cache and config.dataset != "table":  # a user table may change under the same name
        try:
            _save_cached(_cache_path(config, data_dir, cache_dir), dataset, config)  # the files may be new now
        except OSError as exc:
            log.warning("%s: cannot write the cache (%s); going on without it", path, exc)
    return dataset


def _table_identity(config: DatasetConfig) -> str:
    """The config and the table's files (each one's size and modification time): a changed file re-encodes."""
    source = Path(config.table_path)
    files = sorted(source.rglob("*.parquet")) if source.is_dir() else [source]
    stats = [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.is_file()]
    return hashlib.sha256(json.dumps([config.cache_key(), stats]).encode()).hexdigest()[:16]


def _cache_path(config: DatasetConfig, data_dir: Path | None, cache_dir: Path) -> Path:
    """The cache file of this config *and* these raw files: their size and modification time are part of
    the key, so replaced, corrupted or missing raw files are never hidden behind a warm cache."""
    identity = []
    source = source_of(config.dataset)
    if source.raw_folder:
        for name in source.raw_files:
            path = resolve_data_dir(data_dir) / source.raw_folder / name
            stat = path.stat() if path.is_file() else None
            identity.append([name, stat.st_size if stat else None, stat.st_mtime_ns if stat else None])
    digest = hashlib.sha256(json.dumps([config.cache_key(), identity]).encode()).hexdigest()[:16]
    return cache_dir / f"{config.dataset}-{digest}.npz"


def _save_cached(path: Path, dataset: EncodedDataset, config: DatasetConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "name": dataset.name, "spec": dataset.spec.to_dict(), "synthetic": dataset.synthetic,
        "notes": dataset.notes, "config": config.to_dict(), "domain_column": dataset.domain_column,
        "vocabularies": [v.to_dict() for v in dataset.vocabularies],
    }
    temporary = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(temporary, codes=dataset.codes, domains=dataset.domains, labels=dataset.labels,
             split=dataset.split, meta=np.array(json.dumps(meta)))
    temporary.replace(path)


def _load_cached(path: Path) -> EncodedDataset:
    with np.load(path) as archive:
        meta = json.loads(str(archive["meta"]))
        return EncodedDataset(
            meta["name"], FeatureSpec.from_dict(meta["spec"]), archive["codes"], archive["domains"],
            archive["labels"], archive["split"], meta["synthetic"], meta["notes"],
            tuple(Vocabulary.from_dict(v) for v in meta["vocabularies"]), meta["domain_column"],
        )

