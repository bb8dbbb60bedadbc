"""What decides a dataset's encoded rows: DatasetConfig (its hash keys the cache and the run records)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from moe_mlora.data.sources import SOURCES, source_of
from moe_mlora.data.split import PART_NAMES
from moe_mlora.errors import ConfigError
from moe_mlora.settings import setting

DATASETS = tuple(SOURCES)  # the registry (moe_mlora.data.sources) knows them
CACHE_FORMAT = 2  # 2: vocabularies saved with the codes


@dataclass(frozen=True)
class DatasetConfig:
    """Everything that decides the encoded rows; its hash keys the cache and the run records."""

    dataset: str = setting("movielens-100k", help=lambda: f"{' | '.join(SOURCES)} (table: a user's own CSV or Parquet file, --table-path).")
    split_by: str | None = setting(None, help="Domain field: gender|age|occupation (MovieLens), theme (Taobao), or the table's domain column.")
    features: tuple[str, ...] = setting(("user_id", "item_id"), help="Comma-separated categorical features; the domain id is added as a feature.")
    domain_as_feature: bool = True  # the paper feeds the domain id to the model as a categorical field
    n_themes: int = setting(10, help="Taobao: number of themes (domains).")
    theme_selection: str = "first"
    split_seed: int = 123
    sampling_seed: int = 123
    table_path: str | None = setting(None, help="dataset 'table': a CSV or Parquet file.")
    label_column: str = setting("label", help="dataset 'table': the 0/1 label column.")
    verify_checksums: bool = True
    # 0: vocabulary over all rows (the paper's); n >= 1: fitted on training rows, values seen < n times there
    # share a trained out-of-vocabulary row (moe_mlora.data.vocabulary). Default: 0, or 2 for a user table.
    min_count: int | None = setting(None, help="0: vocabulary over all rows (the paper's; default for MovieLens and Taobao). N: fitted on the training rows, values seen fewer than N times there share a trained out-of-vocabulary row, which serves values never seen (default 2 for a table).")
    # A user table's other feature types (moe_mlora.data.feature_types) and its split.
    numeric: tuple[str, ...] = setting((), help="dataset 'table': comma-separated numeric columns (standardised on the training rows; missing cells flagged).")
    multi_valued: tuple[str, ...] = setting((), help="dataset 'table': comma-separated multi-valued columns, e.g. genres 'Action|Comedy' (mean-pooled embeddings).")
    multi_separator: str = setting("|", help="The separator inside a multi-valued cell.")
    split: str = setting("random", help="random (stratified 60/20/20 per domain) | time:COLUMN (latest 20% of each domain's rows test, the 20% before validation; time:COLUMN:global over all rows) | column:COLUMN (the table's own train/valid/test labels).")
    out_of_core: bool = setting(False, help="dataset 'table': a Parquet file or folder larger than memory, encoded into shards on disk and trained chunk by chunk.")

    def __post_init__(self) -> None:
        source = source_of(self.dataset)
        if self.n_themes < 1:
            raise ConfigError(f"--n-themes must be at least 1, got {self.n_themes}")
        if self.dataset == "table" and not (self.table_path and self.split_by):
            raise ConfigError("dataset 'table' needs a table path and --split-by naming its domain column")
        if self.split_by is None:
            object.__setattr__(self, "split_by", source.default_split_by)
        if self.min_count is None:  # the paper's vocabulary over all rows for its datasets; a table's OOV row
            object.__setattr__(self, "min_count", source.min_count)
        if self.min_count < 0:
            raise ConfigError(f"--min-count must be 0 (vocabulary over all rows) or more, got {self.min_count}")
        for name in ("numeric", "multi_valued"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
            if getattr(self, name) and self.dataset != "table":
                raise ConfigError(f"--{name.replace('_', '-')} applies to dataset 'table' (a user's own columns)")
        if self.out_of_core and self.dataset != "table":
            raise ConfigError("--out-of-core applies to dataset 'table' (a Parquet file or folder)")
        if not self.multi_separator:
            raise ConfigError("--multi-separator must not be empty")
        kind, column, scope = self.split_parts
        if kind not in ("random", "time", "column") or (kind != "random" and not column) or \
                (kind == "random" and column) or scope not in ("", "global", "domain") or (scope and kind != "time"):
            raise ConfigError(f"--split must be random, time:COLUMN, time:COLUMN:global or column:COLUMN, got '{self.split}'")
        if kind != "random" and self.dataset != "table":
            raise ConfigError(f"--split {self.split} applies to dataset 'table'; the paper's datasets use the random split")
        columns = [*self.features, *self.numeric, *self.multi_valued, self.label_column, self.split_by]
        if self.dataset == "table" and (len(set(columns)) != len(columns) or (column and column in columns)):
            raise ConfigError(f"feature, numeric, multi-valued, label, domain and split columns must be distinct, "
                              f"got {[*columns, *([column] if column else [])]}")
        object.__setattr__(self, "features", tuple(self.features))

    @property
    def split_parts(self) -> tuple[str, str, str]:
        """(kind, column, scope): ('random', '', ''), ('time', 'ts', '' or 'global'), ('column', 'part', '')."""
        kind, _, rest = self.split.partition(":")
        column, _, scope = rest.partition(":")
        return kind, column, scope

    def cache_key(self) -> str:
        payload = json.dumps({"config": asdict(self), "format": CACHE_FORMAT}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        data = asdict(self)
        for name in ("features", "numeric", "multi_valued"):
            data[name] = list(getattr(self, name))
        return data


SPLIT_NAMES = {"train": PART_NAMES["train"], "valid": PART_NAMES["valid"], "validation": PART_NAMES["valid"],
               "test": PART_NAMES["test"]}
