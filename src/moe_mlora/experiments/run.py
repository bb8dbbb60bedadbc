"""One experiment: dataset + backbone + approach + seed -> trained model, test metrics, files on disk."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from moe_mlora.data import EncodedDataset, prepare_dataset
from moe_mlora.run_config import RunConfig
from moe_mlora.experiments.records import RESULT_FILE, RunRecord, code_version, source_digest, write_json
from moe_mlora.experiments.tracking import TensorBoardLog, write_epochs_csv
from moe_mlora.models import build_model
from moe_mlora.training.approaches import ApproachConfig, train_approach
from moe_mlora.serving.manifest import save_run_weights, write_run_files
from moe_mlora.training.checkpoint import MODEL_WEIGHTS
from moe_mlora.files import probe_writable, read_safetensors
from moe_mlora.training.config import forward_precision, resolve_device, set_seed, torch_threads
from moe_mlora.training.distributed import is_main_process, world_size
from moe_mlora.training.resume import RESUME_FOLDER, RunCheckpoint
from moe_mlora.training.diagnostics import moe_diagnostics
from moe_mlora.training.evaluation import evaluate
from moe_mlora.training.loop import EpochCallback, PhaseResult

__all__ = ["RESULT_FILE", "RunConfig", "RunRecord", "execute_run", "finished_base_backbone", "write_json"]


def execute_run(
    config: RunConfig,
    runs_root: Path | None = None,
    *,
    dataset: EncodedDataset | None = None,
    data_dir: Path | None = None,
    on_epoch: EpochCallback | None = None,
    reuse_base: bool = True,
    log_dir: Path | None = None,
) -> RunRecord:
    """Train and test one configuration; when runs_root is given, write its folder (weights, manifest,
    result.json, epochs.csv). With `log_dir`, TensorBoard event files follow the training.

    With `reuse_base`, a MoE-MLoRA run takes its phase 1 from the finished Base run of the same settings
    in `runs_root` when there is one (bitwise what phase 1 would train).
    """
    board = TensorBoardLog(log_dir, config.run_dir(Path(".")).name) if log_dir is not None else None
    try:
        with torch_threads(config.train.threads), forward_precision(config.train.precision):
            return _execute_run(config, runs_root, dataset, data_dir, board.callback(on_epoch) if board else on_epoch,
                                reuse_base)
    finally:
        if board:
            board.close()


def _execute_run(config, runs_root, dataset, data_dir, on_epoch, reuse_base) -> RunRecord:
    started = time.perf_counter()
    device = resolve_device(config.train.device)
    dataset = dataset or prepare_dataset(config.data, data_dir)
    runs_root = runs_root if is_main_process() else None  # under torchrun, rank 0 writes the run
    if runs_root is not None:
        probe_writable(config.run_dir(runs_root))  # before training, not after it
    set_seed(config.train.seed)
    model = build_model(config.model, dataset.spec, config.model_config).to(device)
    train, valid, test = dataset.part("train"), dataset.part("valid"), dataset.part("test")
    reused = finished_base_backbone(config, runs_root) if runs_root is not None and reuse_base else None
    checkpoint = None
    if runs_root is not None and world_size() == 1:  # under torchrun a killed run starts again
        checkpoint = RunCheckpoint(config.run_dir(runs_root) / RESUME_FOLDER, {
            "config": config.to_dict(), "code": code_version(), "source": source_digest(), "torch": torch.__version__,
            "reused_backbone": reused[2] if reused else None})
    report = train_approach(model, train, valid, dataset.spec.domain_names, config.approach, config.train, on_epoch,
                            trained_backbone=reused, checkpoint=checkpoint)
    report.test = evaluate(model, test, dataset.spec.domain_names, config.train.eval_batch_size)
    diagnostics = (moe_diagnostics(model, valid, test, dataset.spec.domain_names, config.train.eval_batch_size,
                                   report.gate_start, report.phases[-1].best_epoch)
                   if config.approach.approach == "moe-mlora" else None)
    record = RunRecord("ok", config, dataset=dataset.display_name, synthetic=dataset.synthetic,
                       n_domains=dataset.spec.n_domains, test=report.test, valid=report.valid, phases=report.phases,
                       diagnostics=diagnostics, seconds=time.perf_counter() - started, notes=list(dataset.notes))
    if checkpoint and checkpoint.resumed():
        record.notes.append(checkpoint.resumed())
    if runs_root is not None:
        folder = config.run_dir(runs_root)
        save_run_weights(model, folder, config.approach.approach)
        write_run_files(folder, model, dataset, config.to_dict())
        write_epochs_csv(folder, record.phases)
        record.write(folder)
    if checkpoint:
        checkpoint.clear()
    return record


def base_run_of(config: RunConfig) -> RunConfig | None:
    """The Base run whose backbone a MoE-MLoRA run (paper schedule) reuses for phase 1; None for other runs."""
    if config.approach.approach != "moe-mlora" or config.approach.schedule != "paper":
        return None
    return replace(config, approach=ApproachConfig("base"))


def finished_base_backbone(config: RunConfig, runs_root: Path) -> tuple[dict, PhaseResult, str] | None:
    """The Base run with the same data, model, settings and seed, if finished: MoE-MLoRA's phase 1 would
    reproduce its backbone bitwise (both draw from the same per-phase seed), so a sweep trains it once."""
    base = base_run_of(config)
    if base is None:
        return None
    folder = base.run_dir(runs_root)
    record = RunRecord.read(folder)
    if record is None or not record.ok or not record.current or not (folder / MODEL_WEIGHTS).is_file():
        return None
    return read_safetensors(folder / MODEL_WEIGHTS), record.phases[0], folder.name
