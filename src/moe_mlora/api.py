"""The public Python API in one call: `moe_mlora.train(...)` returns the run's typed record.

    import moe_mlora
    record = moe_mlora.train(model="deepfm", dataset="movielens-100k", split_by="gender",
                             approach="moe-mlora", max_epochs=2, runs_dir="runs")
    print(record.test.wauc)
    predictor = moe_mlora.Predictor.from_run(record.config.run_dir("runs"))

Every setting of a run (moe_mlora.RunConfig's sections: DatasetConfig, ModelConfig, ApproachConfig, TrainConfig,
and the backbone's name `model`) is a keyword here, named as on the command line with '_' for '-'.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

from moe_mlora.errors import ConfigError
from moe_mlora.run_config import SECTIONS, RunConfig
from moe_mlora.experiments.records import RunRecord


def config_from_settings(base: RunConfig | None = None, **settings) -> RunConfig:
    """`base` (default: every setting's default) with the given settings, each found in its section by name;
    an unknown name is a one-line ConfigError naming it."""
    config = base or RunConfig()
    by_section: dict[str, dict] = {}
    owner = {spec.name: section for section, kind in SECTIONS.items() for spec in fields(kind)}
    for name, value in settings.items():
        if name == "model":
            continue
        if name not in owner:
            raise ConfigError(f"unknown setting '{name}'; a run has model and {', '.join(sorted(owner))}")
        by_section.setdefault(owner[name], {})[name] = tuple(value) if isinstance(value, list) else value
    changed = {section: replace(getattr(config, section), **values) for section, values in by_section.items()}
    return replace(config, **changed, **({"model": settings["model"]} if "model" in settings else {}))


def train(config: RunConfig | None = None, *, runs_dir: str | Path | None = None, data_dir: str | Path | None = None,
          **settings) -> RunRecord:
    """Train and test one run: `config`, or the defaults, with `settings` applied (see config_from_settings).
    With `runs_dir`, the run's folder, `record.config.run_dir(runs_dir)`, is written there (weights, manifest,
    result.json, epochs.csv) and a killed run resumes from it."""
    from moe_mlora.experiments.run import execute_run

    config = config_from_settings(config, **settings)
    if "progress" not in settings and config.train.progress:
        config = replace(config, train=replace(config.train, progress=False))
    runs = Path(runs_dir) if runs_dir is not None else None
    return execute_run(config, runs, data_dir=Path(data_dir) if data_dir is not None else None)
