"""The registry of data sources: what the CLI, the grids, the cache and the report ask about a dataset.

A source is its loader's file plus one line in SOURCES: its name, its default domain field, the splits a
grid runs when given its bare name (`reproduce table1 --datasets NAME`), how a grid's `NAME:DETAIL` becomes
its settings, the raw files that identify it (cache keys; whether this machine has it), and how to load it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from moe_mlora.data.movielens import ML_1M, ML_100K, SPLIT_FIELDS, load_movielens_1m, load_movielens_100k
from moe_mlora.data.synthetic import SyntheticTaobaoConfig, generate_synthetic_taobao
from moe_mlora.data.table import InteractionTable
from moe_mlora.data.tabular import load_table
from moe_mlora.data.taobao import CLICK_LOG, ITEM_EMBEDDING, ITEM_POOL, USER_EMBEDDING, load_taobao
from moe_mlora.errors import ConfigError


@dataclass(frozen=True)
class Source:
    name: str
    load: Callable[..., InteractionTable]  # (dataset config, data dir, cache dir) -> the raw table
    default_split_by: str | None = None
    grid_splits: tuple[str, ...] = ()  # the NAME:DETAIL details a bare NAME stands for in a grid
    detail: str = "split_by"  # which setting a grid's DETAIL is: the domain field, or the number of themes
    raw_folder: str | None = None  # under the data dir
    raw_files: tuple[str, ...] = ()  # their size and time key the cache; all present: this machine has it
    min_count: int = 0  # 0: the paper's vocabulary over all rows; a user table gets a trained OOV row
    synthetic: bool = False
    paper_table1: bool = False  # a row family of the paper's Table 1 (what `reproduce table1` runs by default)
    aliases_for: str = ""  # a stand-in for another source where that one is missing (e.g. SYNTHETIC Taobao)
    grid_downloads: bool = False  # a default grid runs it even where missing (it is small and downloads)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def available(self, data_dir: Path) -> bool:
        return bool(self.raw_folder) and all((Path(data_dir) / self.raw_folder / f).is_file() for f in self.raw_files)

    def split_settings(self, detail: str, text: str) -> dict:
        """A grid's `NAME:DETAIL` as DatasetConfig settings ({} for the default)."""
        if not detail:
            return {}
        if self.detail == "n_themes":
            try:
                return {"n_themes": int(detail)}
            except ValueError:
                raise ConfigError(f"'{text}': a {self.name} split is written {self.name}:<number of themes>") from None
        if self.grid_splits and detail not in self.grid_splits:
            raise ConfigError(f"'{text}': {self.name} splits are {', '.join(self.grid_splits)}")
        return {"split_by": detail}


def _movielens(loader):
    return lambda config, data_dir, cache_dir: loader(data_dir, config.split_by, config.features,
                                                      verify=config.verify_checksums)


def _taobao(synthetic: bool):
    def load(config, data_dir, cache_dir) -> InteractionTable:
        if config.split_by != "theme":
            raise ConfigError(f"{config.dataset} is split by theme, not '{config.split_by}'")
        folder = Path(cache_dir) / "taobao-synthetic" if synthetic else Path(data_dir) / "taobao"
        if synthetic and not (folder / CLICK_LOG).is_file():
            generate_synthetic_taobao(folder, SyntheticTaobaoConfig())
        return load_taobao(folder, n_themes=config.n_themes, features=config.features,
                           theme_selection=config.theme_selection, seed=config.sampling_seed, name=config.dataset,
                           synthetic=synthetic)
    return load


def _table(config, data_dir, cache_dir) -> InteractionTable:
    _, column, _ = config.split_parts
    return load_table(Path(config.table_path), features=config.features, label=config.label_column,
                      domain=config.split_by, numeric=config.numeric, multi_valued=config.multi_valued,
                      extra=(column,) if column else ())


TAOBAO_FILES = (CLICK_LOG, ITEM_POOL, USER_EMBEDDING, ITEM_EMBEDDING)
SOURCES: dict[str, Source] = {source.name: source for source in (
    Source("movielens-1m", _movielens(load_movielens_1m), "gender", SPLIT_FIELDS, raw_folder=ML_1M.folder,
           raw_files=ML_1M.required_files, paper_table1=True),
    Source("movielens-100k", _movielens(load_movielens_100k), "gender", SPLIT_FIELDS, raw_folder=ML_100K.folder,
           raw_files=ML_100K.required_files, paper_table1=True, grid_downloads=True),
    Source("taobao", _taobao(False), "theme", ("10", "20"), "n_themes", "taobao", TAOBAO_FILES, paper_table1=True),
    Source("taobao-synthetic", _taobao(True), "theme", ("10", "20"), "n_themes", synthetic=True,
           aliases_for="taobao"),
    Source("table", _table, min_count=2),
)}


def source_of(name: str) -> Source:
    if name not in SOURCES:
        raise ConfigError(f"unknown dataset '{name}'; choose one of {', '.join(SOURCES)}")
    return SOURCES[name]
