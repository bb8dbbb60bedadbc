"""The GPU check of issue #19: the training step and one ML-1M run per backbone on a CUDA device.

    MOE_MLORA_DATA_DIR=../shared/data python benchmarks/gpu.py --out OUT [--device cuda] [--budget-s 420]

1. The step: per backbone, steady training rows/s (batch 1024, a 204,800-row slice after a warm-up) and
   inference rows/s (batch 8192, the whole training part or --infer-rows of it), fp32 and bf16, on ML-1M's gender shapes with the
   model settings of the Table-1 records. CUDA is synchronised before each clock reading.
2. The runs: for each backbone, the shipped CPU record of ML-1M Base by gender, seed 1
   (docs/results/ml1m/records), rerun with the same config on the device: wall time, epochs, test WAUC beside
   the CPU record's. Then DeepFM's MLoRA and MoE-MLoRA records likewise (every approach and phase on the GPU).
   The numbers are not expected to be bitwise those of the CPU (other kernels, other summation order).

Everything is written to OUT/gpu.json after each item, so a run cut short keeps what it measured; items left
when --budget-s is spent are listed as skipped.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from moe_mlora.data import DatasetConfig, prepare_dataset  # noqa: E402
from moe_mlora.run_config import RunConfig  # noqa: E402
from moe_mlora.experiments.records import numerics_description  # noqa: E402
from moe_mlora.experiments.run import execute_run  # noqa: E402
from moe_mlora.models import build_model  # noqa: E402
from moe_mlora.methods.lora import BASE_PHASE  # noqa: E402
from moe_mlora.training.config import TrainConfig, forward_precision, set_seed  # noqa: E402
from moe_mlora.training.evaluation import predict_logits  # noqa: E402
from moe_mlora.training.loop import train_epoch  # noqa: E402
from moe_mlora.training.optim import ModelAdam  # noqa: E402

MODELS = ("wdl", "nfm", "autoint", "pnn", "dcn", "fibinet", "deepfm", "xdeepfm")
RECORDS = ROOT / "docs/results/ml1m/records"
STEP_ROWS, WARMUP_ROWS = 204_800, 20_480


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_throughput(model_name: str, dataset, device: torch.device, precision: str, infer_rows: int | None = None) -> dict:
    train = dataset.part("train")
    scored = train.select(torch.arange(min(infer_rows, len(train)))) if infer_rows else train
    set_seed(0)
    model = build_model(model_name, dataset.spec).to(device)
    config = TrainConfig(progress=False, device=str(device), precision=precision)
    optimizer = ModelAdam(model, list(model.parameters()), config.learning_rate)
    generator = torch.Generator().manual_seed(0)
    train_epoch(model, BASE_PHASE, train.select(torch.arange(WARMUP_ROWS)), optimizer, config, generator)
    synchronise(device)
    start = time.perf_counter()
    train_epoch(model, BASE_PHASE, train.select(torch.arange(STEP_ROWS)), optimizer, config, generator)
    synchronise(device)
    train_s = time.perf_counter() - start
    with forward_precision(precision):
        predict_logits(model, train.select(torch.arange(WARMUP_ROWS)), config.eval_batch_size)
        synchronise(device)
        start = time.perf_counter()
        predict_logits(model, scored, config.eval_batch_size)
        synchronise(device)
    infer_s = time.perf_counter() - start
    return {"train_rows_per_s": STEP_ROWS / train_s, "infer_rows_per_s": len(scored) / infer_s}


def cpu_record(model: str, approach: str, seed: int = 1) -> dict:
    [path] = RECORDS.glob(f"movielens-1m-gender-{model}-{approach}-s{seed}-*/result.json")
    return json.loads(path.read_text())


def rerun_on(record: dict, dataset, device: torch.device, precision: str = "fp32") -> dict:
    config = RunConfig.from_dict(record["config"])
    config = replace(config, train=replace(config.train, device=str(device), precision=precision))
    start = time.perf_counter()
    result = execute_run(config, dataset=dataset).to_dict()
    return {"label": record["label"], "precision": precision, "seconds": time.perf_counter() - start, "cpu_seconds": record["seconds"],
            "test_wauc": result["test"]["wauc"], "cpu_test_wauc": record["test"]["wauc"],
            "test_logloss": result["test"]["logloss"], "cpu_test_logloss": record["test"]["logloss"],
            "epochs": [len(p["history"]) for p in result["phases"]],
            "cpu_epochs": [len(p["history"]) for p in record["phases"]]}


def render(results: dict) -> str:
    """docs/benchmarks/gpu.md from the collected gpu.json."""
    machine = results["machine"]
    where = machine["gpu"] or f"CPU ({machine['cpu']}, {machine.get('threads', '?')} thread(s))"
    # Collected over several processes (step_repeats), or one process's own gpu.json (step): one repeat.
    repeats = results.get("step_repeats") or ([results["step"]] if results.get("step") else [])
    lines = [f"# The device check: {where}, torch {machine['torch']}", "",
             f"Made by `benchmarks/gpu.py` (issue #19); the raw numbers are in `{results.get('json', 'gpu.json')}`.",
             "Rows/s are medians over " + str(len(repeats)) + (" fresh processes" if len(repeats) != 1 else " process") + " (min-max in brackets); "
             "ML-1M by gender, the Table-1 model settings, training batch 1024, inference batch 8192.", ""]
    if results.get("device_calls"):
        lines += ["The device calls that made these numbers:", ""]
        lines += [f"{number}. {what}" for number, what in results["device_calls"].items()] + [""]
    if repeats:
        lines += ["## The step", "", "| backbone | train rows/s fp32 | train rows/s bf16 | inference rows/s fp32 "
                  "| inference rows/s bf16 |", "| --- | ---: | ---: | ---: | ---: |"]

    def cell(model: str, precision: str, what: str) -> str:
        values = [repeat[model][precision][what] for repeat in repeats if precision in repeat.get(model, {})]
        if not values:
            return "-"
        return f"{statistics.median(values) / 1e3:,.0f}k [{min(values) / 1e3:,.0f}-{max(values) / 1e3:,.0f}k]"

    for model in (repeats[0] if repeats else {}):
        lines.append(f"| {model} | {cell(model, 'fp32', 'train_rows_per_s')} | {cell(model, 'bf16', 'train_rows_per_s')} "
                     f"| {cell(model, 'fp32', 'infer_rows_per_s')} | {cell(model, 'bf16', 'infer_rows_per_s')} |")
    if results.get("runs"):
        lines += _runs_section(results["runs"])
    if "bf16_quality" in results:
        lines += _bf16_section(results["bf16_quality"])
    if "bf16_records" in results:
        lines += _bf16_records_section(results["bf16_records"])
    return "\n".join(lines) + "\n"


def _runs_section(runs: list[dict]) -> list[str]:
    """The shipped CPU records rerun on the GPU, one row each."""
    lines = ["", "## ML-1M runs on the GPU beside the shipped CPU records", "",
              "Each shipped CPU record (one thread of this project's 2-core AMD EPYC, commit 91ead99) rerun with the "
              "same config on the GPU: one run each, so the times are single readings. The CPU seconds are the records' own, "
              "taken while the sweep ran two workers on the two cores.", "",
              "| run | GPU s | CPU s | CPU / GPU | epochs GPU (CPU) | test WAUC GPU | CPU | GPU - CPU (points) |",
              "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for run in runs:
        lines.append(f"| {run['label']} | {run['seconds']:.0f} | {run['cpu_seconds']:.0f} | "
                     f"{run['cpu_seconds'] / run['seconds']:.1f}x | {run['epochs']} ({run['cpu_epochs']}) | "
                     f"{100 * run['test_wauc']:.2f} | {100 * run['cpu_test_wauc']:.2f} | "
                     f"{100 * (run['test_wauc'] - run['cpu_test_wauc']):+.2f} |")
    return lines


def _bf16_records_section(quality: dict) -> list[str]:
    """Per backbone, test WAUC of a bf16 rerun minus the shipped fp32 record of the same config and seed."""
    machine = quality["machine"]
    lines = ["", "## bf16 against fp32 on this CPU (ML-1M Base by gender, seeds 1-3)", "",
             f"Each shipped fp32 record (docs/results/ml1m/records, one thread) rerun with `--precision bf16` on "
             f"{machine['cpu']}, {machine['threads']} thread(s), torch {machine['torch']}: "
             f"`benchmarks/gpu.py --device cpu --threads 1 --parts bf16-records` (raw: `{quality['json']}`). The fp32 "
             "side is the record itself: at one thread on this machine the records rerun to the digit "
             "(`benchmarks/rerun_records.py`). Difference in test WAUC points.", "",
             "| backbone | bf16 - fp32 per seed (points) | mean | epochs bf16 (fp32) per seed |",
             "| --- | --- | ---: | --- |"]
    everything = []
    for model in dict.fromkeys(run["label"].split("-")[3] for run in quality["runs"]):
        runs = sorted((r for r in quality["runs"] if r["label"].split("-")[3] == model), key=lambda r: r["label"])
        differences = [100 * (r["test_wauc"] - r["cpu_test_wauc"]) for r in runs]
        everything += differences
        lines.append(f"| {model} | {', '.join(f'{d:+.2f}' for d in differences)} | {statistics.mean(differences):+.2f} | "
                     + "; ".join(f"{r['epochs']} ({r['cpu_epochs']})" for r in runs) + " |")
    lines += ["", f"Over all {len(everything)} pairs: mean {statistics.mean(everything):+.3f} points, "
              f"range {min(everything):+.2f} to {max(everything):+.2f}, "
              f"{sum(d < 0 for d in everything)} of {len(everything)} below fp32."]
    return lines


def _bf16_section(quality: dict) -> list[str]:
    """Per backbone, test WAUC of bf16 minus fp32 for each seed that has both (both on the GPU)."""
    by_run: dict[tuple[str, str], dict] = {}
    for run in quality["runs"]:
        by_run[(run["label"], run["precision"])] = run
    lines = ["", "## bf16 against fp32 (ML-1M Base by gender, both on the GPU)", "",
             f"{quality['concurrent_processes']} runs at a time on the one GPU, so their seconds are not the step's "
             f"speed. Planned: 8 backbones x seeds 1-3 x 2 precisions; {len(quality['runs'])} runs were made"
             + (f", {len(quality['skipped'])} are missing (device time ran out; not drawn, not chosen). "
                if quality["skipped"] else " (over several device calls, listed at the top). ")
             + "Difference in test WAUC points, per seed.", "",
             "| backbone | seeds with both | bf16 - fp32 per seed (points) | mean |", "| --- | --- | --- | ---: |"]
    models = sorted({label.split("-")[3] for label, _ in by_run})
    all_differences = []
    for model in models:
        differences = {}
        for (label, precision), run in sorted(by_run.items()):
            seed = label.rsplit("-s", 1)[1]
            if label.split("-")[3] == model and precision == "bf16" and (label, "fp32") in by_run:
                differences[seed] = 100 * (run["test_wauc"] - by_run[(label, "fp32")]["test_wauc"])
        all_differences += differences.values()
        mean = statistics.mean(differences.values()) if differences else float("nan")
        lines.append(f"| {model} | {', '.join(differences) or 'none'} | "
                     f"{', '.join(f'{d:+.2f}' for d in differences.values())} | {mean:+.2f} |")
    lines += ["", f"Over all {len(all_differences)} pairs: mean {statistics.mean(all_differences):+.3f} points, "
              f"range {min(all_differences):+.2f} to {max(all_differences):+.2f}."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--budget-s", type=float, default=420, help="stop starting new items after this many seconds")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--parts", default="step,runs,approaches", help="step: throughput; runs: Base per backbone; "
                        "approaches: DeepFM's MLoRA and MoE-MLoRA; bf16: Base per backbone and seed 1-3, fp32 and "
                        "bf16 on the device (the quality of bf16); bf16-records: bf16 only, "
                        "against the shipped fp32 CPU records (on the CPU at --threads 1 these are the fp32 runs)")
    parser.add_argument("--shard", default="0/1", help="i/n: this process takes every n-th item from the i-th")
    parser.add_argument("--only-skipped", type=Path, help="a gpu.json: run only the items it lists as skipped (finish a "
                        "run that the device time cut short)")
    parser.add_argument("--render", type=Path, help="print the markdown of this gpu.json, measuring nothing")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--infer-rows", type=int, help="score only this many training rows (default: all of them)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.render:
        try:
            results = json.loads(args.render.read_text())
            print(render(results), end="")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SystemExit(f"{args.render}: not a gpu.json this script can render ({type(error).__name__}: {error})")
        return
    began, device = time.perf_counter(), torch.device(args.device)
    models = args.models.split(",")
    out = {"machine": {"gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                       "torch": torch.__version__, "python": platform.python_version(), "cpu": numerics_description()["cpu_model"],
                       "threads": torch.get_num_threads()},
           "step": {}, "runs": [], "skipped": []}
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        (args.out / "gpu.json").write_text(json.dumps(out, indent=1))

    dataset = prepare_dataset(DatasetConfig("movielens-1m", "gender"))
    parts = args.parts.split(",")
    items = [("step", m, p) for p in ("fp32", "bf16") for m in models] if "step" in parts else []
    items += [("run", m, "base") for m in models] if "runs" in parts else []
    items += [("run", "deepfm", a) for a in ("mlora", "moe-mlora")] if "approaches" in parts else []
    items += [("quality", m, f"{p}:{seed}") for seed in (1, 2, 3) for m in models for p in ("fp32", "bf16")
              ] if "bf16" in parts else []
    items += [("quality", m, f"bf16:{seed}") for seed in (1, 2, 3) for m in models] if "bf16-records" in parts else []
    if args.only_skipped:
        pending = set(json.loads(args.only_skipped.read_text()).get("skipped", []))
        items = [item for item in items if " ".join(item) in pending]
    shard, shards = map(int, args.shard.split("/"))
    items = items[shard::shards]
    for kind, model, what in items:
        if time.perf_counter() - began > args.budget_s:
            out["skipped"].append(f"{kind} {model} {what}")
            continue
        try:
            if kind == "step":
                out["step"].setdefault(model, {})[what] = step_throughput(model, dataset, device, what, args.infer_rows)
            elif kind == "quality":
                precision, seed = what.split(":")
                out["runs"].append(rerun_on(cpu_record(model, "base", int(seed)), dataset, device, precision))
            else:
                out["runs"].append(rerun_on(cpu_record(model, what), dataset, device))
        except Exception as error:  # noqa: BLE001 - a failed item is reported, the others still run
            out["skipped"].append(f"{kind} {model} {what}: {type(error).__name__}: {error}")
        print(kind, model, what, f"{time.perf_counter() - began:.0f}s", flush=True)
        save()
    save()


if __name__ == "__main__":
    main()
