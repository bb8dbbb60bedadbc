"""The paper's experiment grids as lists of run configs: Table 1 and Figure 2."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from moe_mlora.data import DatasetConfig
from moe_mlora.data.movielens import ML_1M
from moe_mlora.data.taobao import CLICK_LOG
from moe_mlora.errors import ConfigError
from moe_mlora.experiments.run import RunConfig
from moe_mlora.models import MODELS, ModelConfig
from moe_mlora.paths import resolve_data_dir
from moe_mlora.training.config import TrainConfig
from moe_mlora.training.approaches import APPROACHES, ApproachConfig

MOVIELENS_SPLITS = ("gender", "age", "occupation")


def parse_split(text: str) -> DatasetConfig:
    """'movielens-100k:occupation', 'movielens-1m:gender', 'taobao:20', 'taobao-synthetic:10'."""
    dataset, _, detail = text.partition(":")
    if dataset.startswith("movielens"):
        return DatasetConfig(dataset, detail or "gender")
    if dataset.startswith("taobao"):
        try:
            return DatasetConfig(dataset, "theme", n_themes=int(detail or 10))
        except ValueError:
            raise ConfigError(f"'{text}': a Taobao split is written taobao:<number of themes>") from None
    raise ConfigError(f"'{text}': write splits as movielens-100k:<gender|age|occupation> or taobao:<themes>")


def split_label(config: DatasetConfig) -> str:
    if config.dataset.startswith("taobao"):
        return f"{config.dataset}-theme-{config.n_themes}"
    return f"{config.dataset}-{config.split_by}"


def available_table1_splits(data_dir: Path | None = None) -> list[str]:
    """What this machine can run: ML-100K always, ML-1M when its files are present, real Taobao when present,
    else the SYNTHETIC Taobao stand-in. (ML-1M is downloaded by `moe-mlora data stats movielens-1m`.)"""
    data_dir = resolve_data_dir(data_dir)
    splits = []
    if all((data_dir / ML_1M.folder / name).is_file() for name in ML_1M.required_files):
        splits += [f"movielens-1m:{field}" for field in MOVIELENS_SPLITS]
    splits += [f"movielens-100k:{field}" for field in MOVIELENS_SPLITS]
    taobao = "taobao" if (data_dir / "taobao" / CLICK_LOG).is_file() else "taobao-synthetic"
    splits += [f"{taobao}:10", f"{taobao}:20"]
    return splits


def check_models(models: list[str]) -> list[str]:
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    return models


def table1_configs(
    splits: list[str], models: list[str], seeds: list[int], train: TrainConfig, model_config: ModelConfig = ModelConfig()
) -> list[RunConfig]:
    """Base, MLoRA, MoE-MLoRA for every split x model x seed; Base first so MoE-MLoRA can reuse its backbone."""
    check_models(models)
    return [
        RunConfig(parse_split(split), model, model_config, ApproachConfig(approach), replace(train, seed=seed))
        for approach in APPROACHES for split in splits for model in models for seed in seeds
    ]


def experts_configs(
    split: str, models: list[str], seeds: list[int], experts_per_domain: list[int], train: TrainConfig,
    model_config: ModelConfig = ModelConfig(),
) -> list[RunConfig]:
    """Figure 2: MoE-MLoRA with k experts per domain (total 2k on the gender split), plus the Base runs
    whose backbones the MoE runs reuse."""
    check_models(models)
    base = [RunConfig(parse_split(split), m, model_config, ApproachConfig("base"), replace(train, seed=s))
            for m in models for s in seeds]
    moe = [RunConfig(parse_split(split), m, model_config, ApproachConfig("moe-mlora", k), replace(train, seed=s))
           for k in experts_per_domain for m in models for s in seeds]
    return base + moe
