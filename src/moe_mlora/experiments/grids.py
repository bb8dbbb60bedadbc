"""The paper's experiment grids as lists of run configs: Table 1 and Figure 2."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from moe_mlora.data import DatasetConfig
from moe_mlora.data.sources import SOURCES
from moe_mlora.errors import ConfigError
from moe_mlora.run_config import load_config_file
from moe_mlora.experiments.run import RunConfig
from moe_mlora.models import MODELS, ModelConfig
from moe_mlora.paths import resolve_data_dir
from moe_mlora.training.config import TrainConfig
from moe_mlora.methods import PAPER_METHODS
from moe_mlora.training.approaches import ApproachConfig

# An arm of --methods that is no method: Base with the domain id left out of the model's fields (how much the id
# alone gives; the report names it base[no-domain-field]).
BASE_WITHOUT_DOMAIN = "base-without-domain"

# The ablation: MoE-MLoRA variants (ApproachConfig.variant strings) on three backbones of different kinds.
ABLATION_VARIANTS = ("gate-init=own-domain", "gate-lr=0.01", "gate-input=features", "authors-code")
ABLATION_MODELS = ("deepfm", "dcn", "autoint")


def parse_variant(text: str) -> dict:
    """'gate-init=own-domain,gate-lr=0.01' or 'authors-code' -> ApproachConfig fields (the inverse of .variant)."""
    approach = ApproachConfig.from_arm(f"moe-mlora[{text}]")
    return {name: getattr(approach, name) for name in ("schedule", "gate_init", "gate_input", "gate_learning_rate",
                                                       "selection", "part_embeddings")
            if getattr(approach, name) != getattr(ApproachConfig("moe-mlora"), name)}


def parse_split(text: str) -> DatasetConfig:
    """'movielens-100k:occupation', 'movielens-1m:gender', 'taobao:20', 'taobao-synthetic:10': a source of the
    registry (moe_mlora.data.sources) and one of its splits."""
    dataset, _, detail = text.partition(":")
    if dataset not in SOURCES or (not SOURCES[dataset].grid_splits and dataset != "table"):
        grid = [name for name, source in SOURCES.items() if source.grid_splits]
        raise ConfigError(f"'{text}': write splits as NAME:DETAIL with NAME one of {', '.join(grid)} "
                          f"(e.g. movielens-100k:occupation, taobao:20)")
    return DatasetConfig(dataset, **SOURCES[dataset].split_settings(detail, text))


def expand_splits(names: list[str]) -> list[str]:
    """Grid splits from names: NAME:DETAIL as given, a bare NAME as all of its source's splits."""
    splits = []
    for item in names:
        if ":" in item:
            splits.append(item)
            continue
        source = SOURCES.get(item)
        if source is None or not source.grid_splits:
            grid = [name for name, s in SOURCES.items() if s.grid_splits]
            raise ConfigError(f"'{item}': not a dataset a grid runs; choose from {', '.join(grid)} "
                              "(NAME for all its splits, NAME:DETAIL for one)")
        splits += [f"{item}:{detail}" for detail in source.grid_splits]
    return splits


def split_label(config: DatasetConfig) -> str:
    if SOURCES[config.dataset].detail == "n_themes":
        return f"{config.dataset}-theme-{config.n_themes}"
    if config.dataset == "table" and config.table_path:  # one table, one split: tables are never pooled
        path = Path(config.table_path)
        return f"table-{path.parent.name if path.stem == 'table' else path.stem}-{config.split_by}"
    return f"{config.dataset}-{config.split_by}"


def available_table1_splits(data_dir: Path | None = None) -> list[str]:
    """What this machine can run of the paper's Table 1: each of its sources whose files are here (a source
    with a stand-in, e.g. the SYNTHETIC Taobao, runs that stand-in where the real files are missing)."""
    data_dir = resolve_data_dir(data_dir)
    stand_ins = {source.aliases_for: name for name, source in SOURCES.items() if source.aliases_for}
    names = []
    for name, source in SOURCES.items():
        if not source.paper_table1:
            continue
        if source.available(data_dir) or source.grid_downloads:
            names.append(name)
        elif name in stand_ins:
            names.append(stand_ins[name])
    return expand_splits(names)


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
    moe_variants: list[str] = (), methods: list[str] = (),
) -> list[RunConfig]:
    """The paper's Base, MLoRA, MoE-MLoRA (then MoE-MLoRA variants and other registered methods) for every
    split x model x seed; seeds outermost, so a sweep cut short holds whole seeds; Base first within a seed, so
    MoE-MLoRA can reuse its backbone."""
    check_models(models)
    extra = [m for m in methods if m not in PAPER_METHODS and m != BASE_WITHOUT_DOMAIN]
    approaches = ([(ApproachConfig(a), True) for a in PAPER_METHODS]
                  + [(ApproachConfig("moe-mlora", **parse_variant(v)), True) for v in moe_variants]
                  + [(ApproachConfig.from_arm(m), True) for m in extra]
                  + ([(ApproachConfig("base"), False)] if BASE_WITHOUT_DOMAIN in methods else []))
    return [
        RunConfig(replace(parse_split(split), domain_as_feature=with_domain), model, model_config, approach,
                  replace(train, seed=seed))
        for seed in seeds for approach, with_domain in approaches for split in splits for model in models
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


def _check_grid_sections(configs: list[RunConfig], data: dict, source: str) -> None:
    """A grid runs its own arms: a file's `approach` that the grid would not run is a one-line error (it was
    silently ignored), while one the grid runs anyway (approach: base) is accepted, so one file serves `train`
    and the grids. (The file's `model` is the grid's backbone unless --models says otherwise: grid_models.)"""
    approaches = sorted({config.approach.approach for config in configs})
    approach = data.get("approach") or {}
    if isinstance(approach, dict) and approach:
        name, others = approach.get("approach"), sorted(set(approach) - {"approach"})
        if others or (name is not None and name not in approaches):
            what = f"approach '{name}'" if name not in approaches else f"approach settings ({', '.join(others)})"
            raise ConfigError(f"{source}: {what} in the file would not be used: a grid runs its own arms "
                              f"({', '.join(approaches)}; add one with --methods or --moe-variant)")


def grid_models(models: str | None, config_file: Path | None, default: tuple[str, ...]) -> list[str]:
    """A grid's backbones: --models where given, else the config file's `model`, else `default`."""
    if models:
        return [m.strip() for m in models.split(",") if m.strip()]
    if config_file is not None:
        model = load_config_file(config_file).get("model")
        if model is not None:
            return [str(model).lower()]
    return list(default)


def with_config_file(configs: list[RunConfig], data: dict, source: str,
                     train_overrides: dict | None = None) -> list[RunConfig]:
    """A grid run on the config file's dataset (e.g. the user's own table), model hyper-parameters and
    training settings: its `data`, `model_config` and `train` sections replace the grid's (the grid keeps
    its models, approaches and seeds, so `model` and `approach` in the file are not used). `train_overrides`
    (the training options given on the command line) win over the file's train section."""
    _check_grid_sections(configs, data, source)
    if train_overrides:
        data = {**data, "train": {**(data.get("train") or {}), **train_overrides}}
    given = RunConfig.from_partial({k: v for k, v in data.items() if k in ("data", "model_config", "train")}, source)
    out: dict[str, RunConfig] = {}
    for config in configs:
        train = replace(given.train, seed=config.train.seed) if "train" in data else config.train
        file_data = given.data if config.data.domain_as_feature else replace(given.data, domain_as_feature=False)
        changed = replace(config, data=file_data if "data" in data else config.data,
                          model_config=given.model_config if "model_config" in data else config.model_config,
                          train=replace(train, progress=False))
        out.setdefault(changed.key(), changed)  # one dataset: the grid's splits collapse into it
    return list(out.values())
