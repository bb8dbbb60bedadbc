"""Does torch.compile pay on this CPU? Training rows/s of each backbone, eager against compiled, side by side.

    MOE_MLORA_DATA_DIR=../shared/data python benchmarks/compile_check.py --models deepfm,autoint,xdeepfm > OUT.md

ML-1M by gender, the Table-1 model settings, batch 1024, one thread. In one process, per backbone, eager and
compiled (torch.compile's default inductor backend) alternate `--repeats` times: each builds the model from
seed 0, warms up on 20,480 rows (compiling, for the compiled one), then trains 102,400 rows. The
compile time is the compiled warm-up's first reading. Medians, min-max in brackets.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from moe_mlora.data import DatasetConfig, prepare_dataset
from moe_mlora.experiments.records import numerics_description
from moe_mlora.models import build_model
from moe_mlora.methods.lora import BASE_PHASE
from moe_mlora.training.config import TrainConfig, set_seed
from moe_mlora.training.loop import train_epoch
from moe_mlora.training.optim import ModelAdam

WARMUP_ROWS, TIMED_ROWS = 20_480, 102_400


def one(name: str, dataset, compiled: bool) -> tuple[float, float]:
    """(warm-up seconds, timed rows/s) of one fresh model."""
    set_seed(0)
    model = build_model(name, dataset.spec)
    optimizer = ModelAdam(model, list(model.parameters()), 1e-3)
    generator, config, train = torch.Generator().manual_seed(0), TrainConfig(progress=False), dataset.part("train")
    network = torch.compile(model) if compiled else model
    seconds = []
    for rows in (WARMUP_ROWS, TIMED_ROWS):
        started = time.perf_counter()
        train_epoch(model, BASE_PHASE, train.select(torch.arange(rows)), optimizer, config, generator, network=network)
        seconds.append(time.perf_counter() - started)
    return seconds[0], TIMED_ROWS / seconds[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="deepfm,autoint,xdeepfm")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = prepare_dataset(DatasetConfig("movielens-1m", "gender"))
    print(f"# torch.compile against eager, training ({numerics_description()['cpu_model']}, 1 thread, torch {torch.__version__})\n")
    print("| backbone | eager rows/s | compiled rows/s | compiled / eager | compile time (s) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in args.models.split(","):
        rates, compile_s = {False: [], True: []}, None
        for _ in range(args.repeats):
            for compiled in (False, True):
                warm, rate = one(name, dataset, compiled)
                rates[compiled].append(rate)
                if compiled and compile_s is None:
                    compile_s = warm

        def cell(values: list[float]) -> str:
            return f"{statistics.median(values) / 1e3:,.0f}k [{min(values) / 1e3:,.0f}-{max(values) / 1e3:,.0f}k]"

        ratio = statistics.median(rates[True]) / statistics.median(rates[False])
        print(f"| {name} | {cell(rates[False])} | {cell(rates[True])} | {ratio:.2f} | {compile_s:.0f} |", flush=True)


if __name__ == "__main__":
    main()
