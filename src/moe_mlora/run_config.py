"""A run's full configuration: dataset, backbone and its hyper-parameters, approach, training settings."""

from __future__ import annotations

import hashlib
import json
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path

from moe_mlora.data import DatasetConfig
from moe_mlora.errors import ConfigError
from moe_mlora.files import safe_name
from moe_mlora.models import MODELS, ModelConfig
from moe_mlora.settings import check_type, default_of, hints_of, in_identity, setting
from moe_mlora.training.approaches import ApproachConfig
from moe_mlora.training.config import TrainConfig

# A run's key covers everything that can change its numbers. The rule needs no list kept by hand: a setting
# declared with identity=False (moe_mlora.settings) is never in it; the settings below, which every run had
# from the first published sweep, are in it at any value; any other setting, added since, is in it only where
# it differs from its default, so that every key written before the setting existed stays valid. This is a
# record of history, never edited: a new setting needs no entry here.
FOUNDING_SETTINGS = {
    "data": ("dataset", "split_by", "features", "domain_as_feature", "n_themes", "theme_selection", "split_seed",
             "sampling_seed", "table_path", "label_column", "verify_checksums"),
    "model_config": ("embedding_dim", "embedding_init_std", "dnn_hidden", "dnn_dropout", "l2_embedding",
                     "attention_layers", "attention_dim", "attention_heads", "attention_residual", "cross_layers",
                     "l2_cross", "senet_reduction_ratio", "cin_layer_sizes", "cin_split_half", "cin_activation",
                     "bi_dropout"),
    "approach": ("approach", "experts_per_domain", "lora_reduce", "rank", "phase2_schedule", "schedule", "gate_init",
                 "gate_input", "gate_learning_rate"),
    "train": ("learning_rate", "batch_size", "eval_batch_size", "max_epochs", "patience", "seed", "batch_order",
              "select_by"),
}
# The one setting added later whose value in runs before it existed is not its declared default (None, which
# each dataset resolves): those runs used the vocabulary over all rows.
VALUE_BEFORE = {("data", "min_count"): 0}


def load_config_file(path: Path) -> dict:
    """A run config from YAML or JSON: the sections of RunConfig.to_dict(), any subset. A run's result.json
    is a valid config (its `config` section is taken), so one recorded run reruns exactly."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc})") from None
    try:
        data = json.loads(text) if Path(path).suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid {'JSON' if Path(path).suffix == '.json' else 'YAML'} ({first})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of sections (data, model, model_config, approach, train)")
    if "config" in data and "status" in data:  # a run record
        data = data["config"]
    return data


@dataclass(frozen=True)
class RunConfig:
    data: DatasetConfig = field(default_factory=DatasetConfig)
    model: str = setting("deepfm", help=lambda: " | ".join(MODELS))
    model_config: ModelConfig = field(default_factory=ModelConfig)
    approach: ApproachConfig = field(default_factory=ApproachConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        # before anything touches the filesystem: the model's name becomes part of the run folder's name
        if self.model not in MODELS:
            raise ConfigError(f"unknown model '{self.model}'; choose one of {', '.join(MODELS)}")

    def to_dict(self) -> dict:
        return {"data": self.data.to_dict(), "model": self.model, "model_config": self.model_config.to_dict(),
                "approach": asdict(self.approach), "train": asdict(self.train)}

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        return cls(DatasetConfig(**data["data"]), data["model"], ModelConfig(**data["model_config"]),
                   ApproachConfig(**data["approach"]), TrainConfig(**data["train"]))

    @classmethod
    def from_partial(cls, data: dict, source: str = "config") -> "RunConfig":
        """A config from any subset of the sections and keys of `to_dict()` (the rest default); an unknown
        section or key is a one-line error naming it."""
        unknown = sorted(set(data) - set(SECTIONS) - {"model"})
        if unknown:
            raise ConfigError(f"{source}: unknown key '{unknown[0]}'; a config has {', '.join(['model', *SECTIONS])}")
        built = {}
        for section, kind in SECTIONS.items():
            values = data.get(section) or {}
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: '{section}' must be a mapping of its settings, got {values!r}")
            known = {f.name for f in fields(kind)}
            bad = sorted(set(values) - known)
            if bad:
                raise ConfigError(f"{source}: unknown key '{section}.{bad[0]}'; {section} has {', '.join(sorted(known))}")
            for name, value in values.items():
                check_type(value, hints_of(kind)[name], f"{source}: '{section}.{name}'")
            try:
                built[section] = kind(**values)
            except TypeError as exc:
                raise ConfigError(f"{source}: bad value in '{section}' ({exc})") from None
        model = data.get("model", "deepfm")
        if not isinstance(model, str):
            raise ConfigError(f"{source}: 'model' must be a backbone name, got {model!r}")
        return cls(built["data"], model.lower(), built["model_config"], built["approach"], built["train"])

    def key(self) -> str:
        """Identity of the run: everything that can change its numbers (the rule: FOUNDING_SETTINGS)."""
        identity = self.to_dict()
        for section, kind in SECTIONS.items():
            for spec in fields(kind):
                value = identity[section][spec.name]
                if not in_identity(spec) or spec.name not in FOUNDING_SETTINGS[section] and \
                        value == as_json(VALUE_BEFORE.get((section, spec.name), default_of(spec))):
                    del identity[section][spec.name]
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def variant(self) -> str:
        """What sets this run's arm apart from its method's own: the approach's variant, and no-domain-field where
        the domain id is not fed to the model as a field (the baseline of how much the id alone gives)."""
        return ",".join(part for part in (self.approach.variant,
                                          "" if self.data.domain_as_feature else NO_DOMAIN_FIELD) if part)

    @property
    def arm(self) -> str:
        """The arm a report sets this run in: 'base', 'moe-mlora[selection=trained]', 'base[no-domain-field]', ..."""
        return f"{self.approach.approach}[{self.variant}]" if self.variant else self.approach.approach

    @property
    def label(self) -> str:
        approach = self.approach.approach
        if approach == "moe-mlora" and self.approach.experts_per_domain != 1:
            approach += f"-k{self.approach.experts_per_domain}"
        if self.variant:
            approach += "-" + re.sub(r"[^A-Za-z0-9.]+", "-", self.variant)
        split_by = safe_name(self.data.split_by)  # a table's column name may hold '/'
        return f"{self.data.dataset}-{split_by}-{self.model}-{approach}-s{self.train.seed}"

    def run_dir(self, runs_root: Path | str) -> Path:
        return Path(runs_root) / f"{self.label}-{self.key()[:8]}"

    def with_seed(self, seed: int) -> "RunConfig":
        return replace(self, train=replace(self.train, seed=seed))


NO_DOMAIN_FIELD = "no-domain-field"


def as_json(value):
    """A value as a config's dict holds it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value


SECTIONS = {"data": DatasetConfig, "model_config": ModelConfig, "approach": ApproachConfig, "train": TrainConfig}
