"""From a typed dataset config to encoded, split int tensors, cached on disk by the config's hash."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from moe_mlora.data.movielens import load_movielens_1m, load_movielens_100k
from moe_mlora.data.split import PART_NAMES, stratified_domain_split
from moe_mlora.data.synthetic import SyntheticTaobaoConfig, generate_synthetic_taobao
from moe_mlora.data.table import DOMAIN, LABEL, InteractionTable
from moe_mlora.data.tabular import load_table
from moe_mlora.data.taobao import load_taobao
from moe_mlora.errors import ConfigError, DataError
from moe_mlora.features import FeatureSpec
from moe_mlora.paths import resolve_cache_dir, resolve_data_dir

log = logging.getLogger(__name__)

DATASETS = ("movielens-100k", "movielens-1m", "taobao", "taobao-synthetic", "table")
DEFAULT_SPLIT_BY = {"movielens-100k": "gender", "movielens-1m": "gender", "taobao": "theme", "taobao-synthetic": "theme"}
CACHE_FORMAT = 1
MIN_DOMAIN_ROWS = 50


@dataclass(frozen=True)
class DatasetConfig:
    """Everything that decides the encoded rows; its hash keys the cache and the run records."""

    dataset: str = "movielens-100k"
    split_by: str | None = None  # gender | age | occupation (MovieLens), theme (Taobao), a column (table)
    features: tuple[str, ...] = ("user_id", "item_id")
    domain_as_feature: bool = True  # the paper feeds the domain id to the model as a categorical field
    n_themes: int = 10
    theme_selection: str = "first"
    split_seed: int = 123
    sampling_seed: int = 123
    table_path: str | None = None
    label_column: str = "label"
    verify_checksums: bool = True

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset '{self.dataset}'; choose one of {', '.join(DATASETS)}")
        if self.n_themes < 1:
            raise ConfigError(f"--n-themes must be at least 1, got {self.n_themes}")
        if self.dataset == "table" and not (self.table_path and self.split_by):
            raise ConfigError("dataset 'table' needs a table path and --split-by naming its domain column")
        if self.split_by is None:
            object.__setattr__(self, "split_by", DEFAULT_SPLIT_BY[self.dataset])
        object.__setattr__(self, "features", tuple(self.features))

    def cache_key(self) -> str:
        payload = json.dumps({"config": asdict(self), "format": CACHE_FORMAT}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["features"] = list(self.features)
        return data


@dataclass
class TensorPart:
    """One split held as tensors: batches are index slices of these.

    `experts` is set only in an expert view (MoE-MLoRA phase 2), where every row appears once per expert
    of its domain; the tower then routes by expert id instead of domain id (see `routing_ids`).
    """

    codes: torch.Tensor  # (N, F) int64
    domains: torch.Tensor  # (N,) int64
    labels: torch.Tensor  # (N,) float32
    experts: torch.Tensor | None = None  # (N,) int64 expert ids, in an expert view

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def routing_ids(self) -> torch.Tensor:
        """What the tower routes each row by: its expert in an expert view, else its domain."""
        return self.domains if self.experts is None else self.experts

    def to(self, device: torch.device | str) -> "TensorPart":
        experts = None if self.experts is None else self.experts.to(device)
        return TensorPart(self.codes.to(device), self.domains.to(device), self.labels.to(device), experts)

    def select(self, index: torch.Tensor | slice) -> "TensorPart":
        experts = None if self.experts is None else self.experts[index]
        return TensorPart(self.codes[index], self.domains[index], self.labels[index], experts)


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

    def part(self, which: str) -> TensorPart:
        mask = self.split == PART_NAMES[which]
        return TensorPart(
            torch.from_numpy(self.codes[mask]),
            torch.from_numpy(self.domains[mask]),
            torch.from_numpy(self.labels[mask].astype(np.float32)),
        )

    @property
    def display_name(self) -> str:
        return f"{self.name} [SYNTHETIC]" if self.synthetic else self.name


def load_interactions(config: DatasetConfig, data_dir: Path | None = None, cache_dir: Path | None = None) -> InteractionTable:
    """The raw (unencoded) table a config describes."""
    data_dir = resolve_data_dir(data_dir)
    if config.dataset in ("movielens-100k", "movielens-1m"):
        loader = load_movielens_100k if config.dataset == "movielens-100k" else load_movielens_1m
        return loader(data_dir, config.split_by, config.features, verify=config.verify_checksums)
    if config.dataset in ("taobao", "taobao-synthetic"):
        if config.split_by != "theme":
            raise ConfigError(f"{config.dataset} is split by theme, not '{config.split_by}'")
        if config.dataset == "taobao":
            folder, synthetic = data_dir / "taobao", False
        else:
            folder = resolve_cache_dir(cache_dir) / "taobao-synthetic"
            if not (folder / "theme_click_log.csv").is_file():
                generate_synthetic_taobao(folder, SyntheticTaobaoConfig())
            synthetic = True
        return load_taobao(
            folder, n_themes=config.n_themes, features=config.features, theme_selection=config.theme_selection,
            seed=config.sampling_seed, name=config.dataset, synthetic=synthetic,
        )
    return load_table(Path(config.table_path), features=config.features, label=config.label_column, domain=config.split_by)


def encode(table: InteractionTable, config: DatasetConfig) -> EncodedDataset:
    """Integer codes per field (vocabulary over all rows, as the paper's code does) and the 60/20/20 split."""
    domains = table.domain_ids()
    columns = [table.frame[name] for name in table.feature_columns]
    names = list(table.feature_columns)
    if config.domain_as_feature:
        columns.append(pd.Series(domains))
        names.append(DOMAIN)
    codes = np.empty((len(table.frame), len(columns)), dtype=np.int64)
    cardinalities = []
    for index, column in enumerate(columns):
        column_codes, uniques = pd.factorize(column, sort=True)
        codes[:, index] = column_codes
        cardinalities.append(len(uniques))
    labels = table.frame[LABEL].to_numpy(dtype=np.int8)
    if len(labels) and labels.min() == labels.max():
        raise DataError(f"{table.name}: every row has label {int(labels[0])}; a CTR model needs both clicks and "
                        "non-clicks (check the label column)")
    split = stratified_domain_split(domains, labels, seed=config.split_seed)
    spec = FeatureSpec(tuple(names), tuple(cardinalities), tuple(table.domain_order))
    notes = list(table.notes) + domain_warnings(domains, labels, split, spec.domain_names)
    return EncodedDataset(table.name, spec, codes, domains, labels, split, table.synthetic, notes)


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
    path = cache_dir / f"{config.dataset}-{config.cache_key()}.npz"
    if use_cache and path.is_file() and config.dataset != "table":
        return _load_cached(path)
    dataset = encode(load_interactions(config, data_dir, cache_dir), config)
    for note in dataset.notes:
        log.warning("%s: %s", dataset.display_name, note)
    if use_cache and config.dataset != "table":  # a user table may change under the same name
        _save_cached(path, dataset, config)
    return dataset


def _save_cached(path: Path, dataset: EncodedDataset, config: DatasetConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "name": dataset.name, "spec": dataset.spec.to_dict(), "synthetic": dataset.synthetic,
        "notes": dataset.notes, "config": config.to_dict(),
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
        )

