"""One experiment: dataset + backbone + approach + seed -> trained model, test metrics, files on disk."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from safetensors.torch import load_file

from moe_mlora import __version__
from moe_mlora.adapters import adapters_of, save_adapters
from moe_mlora.data import DatasetConfig, EncodedDataset, prepare_dataset
from moe_mlora.models import ModelConfig, build_model
from moe_mlora.training.checkpoint import save_backbone
from moe_mlora.training.loop import FitResult, TrainConfig, evaluate, set_seed
from moe_mlora.training.phases import ApproachConfig, EpochCallback, TrainingReport, train_approach

RESULT_FILE = "result.json"


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
        """Identity of the run: everything that can change its numbers (not progress bars)."""
        identity = self.to_dict()
        identity["train"].pop("progress")
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        approach = self.approach.approach
        if approach == "moe-mlora" and self.approach.experts_per_domain != 1:
            approach += f"-k{self.approach.experts_per_domain}"
        return f"{self.data.dataset}-{self.data.split_by}-{self.model}-{approach}-s{self.train.seed}"

    def run_dir(self, runs_root: Path) -> Path:
        return runs_root / f"{self.label}-{self.key()[:8]}"


def machine_description() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "moe_mlora": __version__,
            "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads()}


def execute_run(
    config: RunConfig,
    runs_root: Path | None = None,
    *,
    dataset: EncodedDataset | None = None,
    data_dir: Path | None = None,
    on_epoch: EpochCallback | None = None,
) -> dict:
    """Train and test one configuration; when runs_root is given, write its folder and result.json."""
    started = time.perf_counter()
    dataset = dataset or prepare_dataset(config.data, data_dir)
    set_seed(config.train.seed)
    model = build_model(config.model, dataset.spec, config.model_config)
    train, valid, test = dataset.part("train"), dataset.part("valid"), dataset.part("test")
    reused = finished_base_backbone(config, runs_root) if runs_root is not None else None
    report = train_approach(model, train, valid, dataset.spec.domain_names, config.approach, config.train, on_epoch,
                            trained_backbone=reused)
    report.test = evaluate(model, test, dataset.spec.domain_names, config.train.eval_batch_size)
    result = result_record(config, dataset, report, time.perf_counter() - started)
    if runs_root is not None:
        folder = config.run_dir(runs_root)
        save_backbone(model, folder)
        if adapters_of(model):
            save_adapters(model, folder)
        write_json(folder / RESULT_FILE, result)
    return result


def finished_base_backbone(config: RunConfig, runs_root: Path) -> tuple[dict, FitResult] | None:
    """The Base run with the same data, model, settings and seed, if finished: MoE-MLoRA's phase 1 would
    reproduce its backbone bitwise (see TowerAdapter), so a sweep trains it once."""
    if config.approach.approach != "moe-mlora":
        return None
    base = replace(config, approach=ApproachConfig("base"))
    folder = base.run_dir(runs_root)
    record = read_record(folder)
    if record is None or record.get("status") != "ok" or not (folder / "model.safetensors").is_file():
        return None
    return load_file(str(folder / "model.safetensors")), FitResult.from_dict(record["phases"][0])


def read_record(folder: Path) -> dict | None:
    path = folder / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # a torn write cannot happen (write_json is atomic), but never trust a file blindly


def result_record(config: RunConfig, dataset: EncodedDataset, report: TrainingReport, seconds: float) -> dict:
    return {
        "status": "ok",
        "key": config.key(),
        "label": config.label,
        "config": config.to_dict(),
        "dataset": dataset.display_name,
        "synthetic": dataset.synthetic,
        "n_domains": dataset.spec.n_domains,
        "test": report.test.to_dict(),
        "valid": report.valid.to_dict(),
        "phases": [asdict(phase) for phase in report.phases],
        "seconds": seconds,
        "machine": machine_description(),
        "notes": dataset.notes,
    }


def write_json(path: Path, payload: dict) -> None:
    """Write atomically, so a killed process never leaves a half-written record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(payload, indent=2, default=str))
    temporary.replace(path)


def with_seed(config: RunConfig, seed: int) -> RunConfig:
    return replace(config, train=replace(config.train, seed=seed))
