"""A run's full configuration: dataset, backbone and its hyper-parameters, approach, training settings."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from moe_mlora.data import DatasetConfig
from moe_mlora.models import ModelConfig
from moe_mlora.training.approaches import ApproachConfig
from moe_mlora.training.config import TrainConfig

# Settings that cannot change a run's numbers, left out of its identity.
NOT_IN_KEY = ("progress", "device")
# Settings added after runs were published, left out of the identity at the value those runs had, so that
# their keys (and a sweep's resumption over them) stay valid.
KEY_SINCE = {("data", "min_count"): 0, ("train", "threads"): 1}


@dataclass(frozen=True)
class RunConfig:
    data: DatasetConfig = field(default_factory=DatasetConfig)
    model: str = "deepfm"
    model_config: ModelConfig = field(default_factory=ModelConfig)
    approach: ApproachConfig = field(default_factory=ApproachConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return {"data": self.data.to_dict(), "model": self.model, "model_config": self.model_config.to_dict(),
                "approach": asdict(self.approach), "train": asdict(self.train)}

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        return cls(DatasetConfig(**data["data"]), data["model"], ModelConfig(**data["model_config"]),
                   ApproachConfig(**data["approach"]), TrainConfig(**data["train"]))

    def key(self) -> str:
        """Identity of the run: everything that can change its numbers."""
        identity = self.to_dict()
        for name in NOT_IN_KEY:
            identity["train"].pop(name)
        for (section, name), old_value in KEY_SINCE.items():
            if identity[section].get(name) == old_value:
                identity[section].pop(name)
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        approach = self.approach.approach
        if approach == "moe-mlora" and self.approach.experts_per_domain != 1:
            approach += f"-k{self.approach.experts_per_domain}"
        if self.approach.variant:
            approach += "-" + re.sub(r"[^A-Za-z0-9.]+", "-", self.approach.variant)
        split_by = re.sub(r"[^A-Za-z0-9._-]+", "_", self.data.split_by)  # a table's column name may hold '/'
        return f"{self.data.dataset}-{split_by}-{self.model}-{approach}-s{self.train.seed}"

    def run_dir(self, runs_root: Path) -> Path:
        return runs_root / f"{self.label}-{self.key()[:8]}"

    def with_seed(self, seed: int) -> "RunConfig":
        return replace(self, train=replace(self.train, seed=seed))
