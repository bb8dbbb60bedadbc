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
# The ablation: MoE-MLoRA variants (ApproachConfig.variant strings) on three backbones of different kinds.
ABLATION_VARIANTS = ("gate-init=own-domain", "gate-lr=0.01", "gate-input=features", "authors-code")
ABLATION_MODELS = ("deepfm", "dcn", "autoint")
_VARIANT_KEYS = {"gate-init": "gate_init", "gate-input": "gate_input", "gate-lr": "gate_learning_rate"}


def parse_variant(text: str) -> dict:
    """'gate-init=own-domain,gate-lr=0.01' or 'authors-code' -> ApproachConfig fields (the inverse of .variant)."""
    fields: dict = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, _, value = part.partition("=")
        if not value and key in ("authors-code", "paper"):
            fields["schedule"] = key
        elif key in _VARIANT_KEYS and value:
            try:
                fields[_VARIANT_KEYS[key]] = float(value) if key == "gate-lr" else value
            except ValueError:
                raise ConfigError(f"variant '{text}': gate-lr takes a number, got '{value}'") from None
        else:
            raise ConfigError(f"variant '{text}': write it as authors-code and/or key=value with keys "
                              f"{', '.join(_VARIANT_KEYS)} (e.g. gate-init=own-domain,gate-lr=0.01)")
    ApproachConfig("moe-mlora", **fields)  # validates the combination
    return fields


def parse_split(text: str) -> DatasetConfig:
    """'movielens-100k:occupation', 'movielens-1m:gender', 'taobao:20', 'taobao-synthetic:10'."""
    dataset, _, detail = text.partition(":")
    if dataset.startswith("movielens"):
        if detail and detail not in MOVIELENS_SPLITS:
            raise ConfigError(f"'{text}': MovieLens splits are {', '.join(MOVIELENS_SPLITS)}")
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
    if config.dataset == "table" and config.table_path:  # one table, one split: tables are never pooled
        path = Path(config.table_path)
        return f"table-{path.parent.name if path.stem == 'table' else path.stem}-{config.split_by}"
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


def seed_list(seeds: int) -> list[int]:
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    return list(range(1, seeds + 1))


def int_list(text: str, option: str) -> list[int]:
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ConfigError(f"{option} takes whole numbers separated by commas, got '{text}'") from None


def check_models(models: list[str]) -> list[str]:
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    return models


def table1_configs(
    splits: list[str], models: list[str], seeds: list[int], train: TrainConfig, model_config: ModelConfig = ModelConfig(),
    moe_variants: list[str] = (),
) -> list[RunConfig]:
    """Base, MLoRA, MoE-MLoRA (and MoE-MLoRA variants) for every split x model x seed; seeds outermost, so a
    sweep cut short holds whole seeds; Base first within a seed, so MoE-MLoRA can reuse its backbone."""
    check_models(models)
    approaches = [ApproachConfig(a) for a in APPROACHES] + [ApproachConfig("moe-mlora", **parse_variant(v))
                                                            for v in moe_variants]
    return [
        RunConfig(parse_split(split), model, model_config, approach, replace(train, seed=seed))
        for seed in seeds for approach in approaches for split in splits for model in models
    ]


def ablation_configs(
    splits: list[str], models: list[str], seeds: list[int], train: TrainConfig, variants: list[str] = ABLATION_VARIANTS,
    model_config: ModelConfig = ModelConfig(),
) -> list[RunConfig]:
    """Base, the paper's MoE-MLoRA and each variant, for every split x model x seed."""
    check_models(models)
    approaches = [ApproachConfig("base"), ApproachConfig("moe-mlora")] + [
        ApproachConfig("moe-mlora", **parse_variant(v)) for v in variants]
    return [RunConfig(parse_split(split), model, model_config, approach, replace(train, seed=seed))
            for seed in seeds for approach in approaches for split in splits for model in models]


def experts_configs(
    split: str, models: list[str], seeds: list[int], experts_per_domain: list[int], train: TrainConfig,
    model_config: ModelConfig = ModelConfig(),
) -> list[RunConfig]:
    """Figure 2: MoE-MLoRA with k experts per domain (total 2k on the gender split), plus the Base runs
    whose backbones the MoE runs reuse."""
    check_models(models)
    if any(k < 1 for k in experts_per_domain):
        raise ConfigError(f"experts per domain must be at least 1, got {list(experts_per_domain)}")
    base = [RunConfig(parse_split(split), m, model_config, ApproachConfig("base"), replace(train, seed=s))
            for s in seeds for m in models]
    moe = [RunConfig(parse_split(split), m, model_config, ApproachConfig("moe-mlora", k), replace(train, seed=s))
           for s in seeds for k in experts_per_domain for m in models]
    return base + moe


def with_config_file(configs: list[RunConfig], data: dict, source: str) -> list[RunConfig]:
    """A grid run on the config file's dataset (e.g. the user's own table), model hyper-parameters and
    training settings: its `data`, `model_config` and `train` sections replace the grid's (the grid keeps
    its models, approaches and seeds, so `model` and `approach` in the file are not used)."""
    given = RunConfig.from_partial({k: v for k, v in data.items() if k in ("data", "model_config", "train")}, source)
    out: dict[str, RunConfig] = {}
    for config in configs:
        train = replace(given.train, seed=config.train.seed) if "train" in data else config.train
        changed = replace(config, data=given.data if "data" in data else config.data,
                          model_config=given.model_config if "model_config" in data else config.model_config,
                          train=replace(train, progress=False))
        out.setdefault(changed.key(), changed)  # one dataset: the grid's splits collapse into it
    return list(out.values())
