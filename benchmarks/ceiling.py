"""A ceiling per backbone: the arithmetic of one training and one inference row, and what this CPU sustains
on matrix products of the model's own shapes, so rows/s can be read as a share of what is possible.

    python benchmarks/ceiling.py --threads 1 --out docs/benchmarks/ceiling.json

Arithmetic: torch.utils.flop_counter.FlopCounterMode counts the floating-point operations of the matrix
products (mm, addmm, bmm, convolutions) of one batch: the forward for inference; forward and backward for
training. Element-wise work (activations, dropout, embedding gathers, Adam) is not counted: it is memory
traffic, not arithmetic, and the ceiling below is an arithmetic one.

Sustained rate: fp32 matrix products at the towers' shapes (batch x 24 x 256, x 256 x 128, x 128 x 64,
and the inference batch), timed alone at the same thread count, median of repeats; the best of them is
the rate a perfect implementation doing nothing but its matrix products could reach. The ceiling is that
rate / FLOPs per row: an upper bound (small products such as AutoInt's attention or the CIN's run slower
than the best shape). A backbone's measured rows/s divided by its ceiling is its share of it.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from moe_mlora.features import FeatureSpec
from moe_mlora.models import MODELS, build_model

BATCH, INFER_BATCH = 1024, 8192
SPEC = FeatureSpec(("user_id", "item_id", "domain"), (6041, 3953, 21), tuple(f"d{i}" for i in range(21)))


def batch_inputs(rows: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    codes = torch.stack([torch.randint(0, c, (rows,), generator=generator) for c in SPEC.cardinalities], dim=1)
    return codes, codes[:, -1].clone(), torch.rand(rows, generator=generator).round()


def count(model: torch.nn.Module, rows: int, train: bool) -> tuple[int, dict]:
    """FLOPs of one batch (forward, or forward and backward) and their split by module."""
    codes, domains, labels = batch_inputs(rows)
    model.train(train)
    with FlopCounterMode(display=False) as counter:
        with torch.set_grad_enabled(train):
            logits = model(codes, domains)
            if train:
                torch.nn.functional.binary_cross_entropy_with_logits(logits, labels).backward()
    return counter.get_total_flops(), counter.get_flop_counts()


def sustained_flops(threads: int, sizes=((1024, 24, 256), (1024, 256, 128), (1024, 128, 64), (8192, 256, 128)),
                    repeats: int = 30) -> dict:
    """FLOP/s of fp32 matrix products at the towers' shapes (rows x in x out), forward and both backward
    products, at `threads` threads: the arithmetic rate this CPU sustains where the models spend it."""
    torch.set_num_threads(threads)
    rates = {}
    for rows, inner, out in sizes:
        a, b = torch.randn(rows, inner), torch.randn(inner, out)
        for _ in range(5):
            a @ b
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - started)
        rates[f"{rows}x{inner}x{out}"] = 2 * rows * inner * out / statistics.median(times)
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    rates = sustained_flops(args.threads)
    peak = max(rates.values())
    result = {"machine": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__,
              "sustained_flops": rates, "models": {}}
    print(f"sustained fp32 GEMM at the towers' shapes ({args.threads} thread(s)): "
          + ", ".join(f"{k}: {v / 1e9:.1f} GFLOP/s" for k, v in rates.items()))
    print(f"{'model':<10} {'train FLOP/row':>15} {'infer FLOP/row':>15} {'train ceiling rows/s':>21} "
          f"{'infer ceiling rows/s':>21}")
    for name in MODELS:
        model = build_model(name, SPEC)
        train_flops, _ = count(model, BATCH, True)
        infer_flops, _ = count(model, INFER_BATCH, False)
        per_train, per_infer = train_flops / BATCH, infer_flops / INFER_BATCH
        result["models"][name] = {"train_flops_per_row": per_train, "infer_flops_per_row": per_infer,
                                  "train_ceiling_rows_per_s": peak / per_train,
                                  "infer_ceiling_rows_per_s": peak / per_infer}
        print(f"{name:<10} {per_train:>15,.0f} {per_infer:>15,.0f} {peak / per_train:>21,.0f} {peak / per_infer:>21,.0f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
