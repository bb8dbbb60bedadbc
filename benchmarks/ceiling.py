"""A ceiling per backbone: the arithmetic of one training and one inference row, and what this CPU sustains
on matrix products of the model's own shapes, so rows/s can be read as a share of what is possible.

    python benchmarks/ceiling.py --threads 1 --out docs/benchmarks/ceiling.json
    # with each backbone's measured rows/s beside its ceiling, in fresh processes, then the table:
    for i in 1 2 3; do MOE_MLORA_DATA_DIR=../shared/data python benchmarks/ceiling.py --measure --out /tmp/c$i.json; done
    python benchmarks/ceiling.py --render /tmp/c1.json /tmp/c2.json /tmp/c3.json > docs/benchmarks/ceiling.md
    mkdir -p docs/benchmarks/ceiling-runs && cp /tmp/c[123].json docs/benchmarks/ceiling-runs/  # the raw measurements

Arithmetic: torch.utils.flop_counter.FlopCounterMode counts the floating-point operations of the matrix
products (mm, addmm, bmm, convolutions) of one batch: the forward for inference; forward and backward for
training. Element-wise work (activations, dropout, embedding gathers, Adam) is not counted: it is memory
traffic, not arithmetic, and the ceiling below is an arithmetic one.

Sustained rate: fp32 matrix products at the towers' shapes (batch x 24 x 256, x 256 x 128, x 128 x 64,
and the inference batch), timed alone at the same thread count, median of repeats; the best of them is
the rate a perfect implementation doing nothing but its matrix products could reach. The ceiling is that
rate / FLOPs per row: an upper bound (small products such as AutoInt's attention or the CIN's run slower
than the best shape). A backbone's measured rows/s divided by its ceiling is its share of it.

--measure times each backbone's training step and inference on ML-1M by gender in the same process, right
after the matrix products (benchmarks/gpu.py's step_throughput: batch 1024 over 204,800 rows after a warm-up;
inference batch 8192 over 204,800 rows), and counts the arithmetic on that dataset's shapes.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from moe_mlora.features import FeatureSpec
from moe_mlora.models import MODELS, build_model

BATCH, INFER_BATCH = 1024, 8192
SPEC = FeatureSpec(("user_id", "item_id", "domain"), (6041, 3953, 21), tuple(f"d{i}" for i in range(21)))


def batch_inputs(rows: int, spec: FeatureSpec = SPEC, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    codes = torch.stack([torch.randint(0, c, (rows,), generator=generator) for c in spec.cardinalities], dim=1)
    return codes, codes[:, -1].clone(), torch.rand(rows, generator=generator).round()


def count(model: torch.nn.Module, rows: int, train: bool, spec: FeatureSpec = SPEC) -> tuple[int, dict]:
    """FLOPs of one batch (forward, or forward and backward) and their split by module."""
    codes, domains, labels = batch_inputs(rows, spec)
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


def peer_ratios(compare_results: dict | None) -> dict[str, str]:
    """Each backbone's training / inference ratio to DeepCTR-Torch from benchmarks/compare.py's results.json."""
    ratios: dict[str, list[str]] = {}
    for row in (compare_results or {}).get("compare", []):
        ratios.setdefault(row["model"], []).append(
            f"{row['ratio_train_rows_per_s']:.1f}x / {row['ratio_infer_rows_per_s']:.1f}x ({row['data']})")
    return {model: "; ".join(found) for model, found in ratios.items()}


def why_missed(share: dict[str, tuple[float, float]]) -> str:
    """The reasons, with this run's shares: share[model] = (training, inference)."""
    mlp = [m for m in share if m not in ("autoint", "xdeepfm")]

    def span(values) -> str:
        return f"{100 * min(values):.0f}-{100 * max(values):.0f}%"

    return f"""
## Why the 70% bar is missed

- A training step is mostly not matrix products. In the operator profiles ([profiles.md](profiles.md)),
  `mm` and `addmm` take about a third of a DeepFM or DCN step; the rest is element-wise work over memory:
  dropout's random numbers, ReLU and its backward, the embedding gradient, Adam, copies. The ceiling counts
  none of it, so even with every product at the best shape's speed the MLP backbones could reach only about 40%
  of it. They are at {span([share[m][0] for m in mlp])}. Reaching 70% would need the element-wise work to cost
  almost nothing.
- AutoInt ({100 * share["autoint"][0]:.0f}%): its attention is 3 fields, 4 heads and head size 2, so its products
  are tiny batched ones (`bmm`) that run far below the best shape's rate, plus softmax and the copies that
  reshape heads.
- xDeepFM ({100 * share["xdeepfm"][0]:.0f}%): the CIN's 1x1 convolutions are real arithmetic (5x DeepFM's per
  training row), but their backward (`convolution_backward`, the largest operator in its profile) runs below
  the best matrix product's rate.
- Inference does better ({span([share[m][1] for m in mlp])} for the MLP backbones): no backward, no dropout,
  no Adam.
- The peer is no bar here: every backbone measured against DeepCTR-Torch is faster than it (the ratio
  column), so the ceiling, not DeepCTR-Torch, says what is left, and what is left is element-wise work.
"""


def render(repeats: list[dict], compare_results: dict | None = None) -> str:
    """docs/benchmarks/ceiling.md from --measure results of fresh processes: medians, min-max in brackets; with
    benchmarks/compare.py's results, each backbone's ratio to DeepCTR-Torch beside its share."""
    first = repeats[0]
    peers = peer_ratios(compare_results)
    peaks = [max(r["sustained_flops"].values()) for r in repeats]

    def median(model: str, key: str) -> float:
        return statistics.median(r["models"][model][key] for r in repeats)

    def spread(model: str, key: str, scale: float = 1e3, unit: str = "k") -> str:
        values = [r["models"][model][key] for r in repeats]
        return f"{statistics.median(values) / scale:,.0f}{unit} [{min(values) / scale:,.0f}-{max(values) / scale:,.0f}{unit}]"

    lines = [f"# The arithmetic ceiling per backbone ({first['machine']}, {first['threads']} thread(s), torch {first['torch']})", "",
             "Made by `benchmarks/ceiling.py --measure` (issue #19) at commit " + first.get("commit", "?") + ", "
             f"{len(repeats)} fresh processes; medians, min-max in brackets. ML-1M by gender, the Table-1 model settings.", "",
             "- FLOP/row: the matrix products of one row (torch's FlopCounterMode), forward and backward for training, "
             "forward for inference. Element-wise work (activations, dropout, gathers, Adam) is not counted.",
             f"- Sustained rate: the best fp32 matrix product at the towers' shapes, timed alone: "
             f"{statistics.median(peaks) / 1e9:.1f} GFLOP/s (median; per shape: "
             + ", ".join(f"{k} {statistics.median(r['sustained_flops'][k] for r in repeats) / 1e9:.1f}" for k in first["sustained_flops"])
             + ").",
             "- Ceiling: that rate / FLOP per row, the rows/s of an implementation doing nothing but its matrix products at "
             "the best shape's speed: an upper bound, not a target reachable by these small products.",
             "- Share: measured rows/s / ceiling. The issue's bar is 70% in training.",
             "- Ratio to DeepCTR-Torch (training / inference): from [README.md](README.md) (benchmarks/compare.py, "
             "2 threads, same configuration); '-' where that benchmark does not run the backbone.", "",
             "| backbone | train FLOP/row | train rows/s | train ceiling | train share | inference FLOP/row | inference rows/s "
             "| inference ceiling | inference share | ratio to DeepCTR-Torch | training >= 70% of ceiling |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for model in first["models"]:
        train_share = median(model, "train_share")
        lines.append(f"| {model} | {median(model, 'train_flops_per_row') / 1e3:,.0f}k | {spread(model, 'train_rows_per_s')} "
                     f"| {median(model, 'train_ceiling_rows_per_s') / 1e3:,.0f}k | {100 * train_share:.0f}% "
                     f"| {median(model, 'infer_flops_per_row') / 1e3:,.0f}k | {spread(model, 'infer_rows_per_s')} "
                     f"| {median(model, 'infer_ceiling_rows_per_s') / 1e3:,.0f}k | {100 * median(model, 'infer_share'):.0f}% "
                     f"| {peers.get(model, '-')} | {'met' if train_share >= 0.7 else '**missed**'} |")
    shares = {model: (median(model, "train_share"), median(model, "infer_share")) for model in first["models"]}
    return "\n".join(lines) + "\n" + why_missed(shares)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--measure", action="store_true", help="also time each backbone's step on ML-1M by gender")
    parser.add_argument("--render", type=Path, nargs="+", help="print ceiling.md from these --measure outputs")
    parser.add_argument("--compare", type=Path, default=Path(__file__).resolve().parents[1] / "docs/benchmarks/results.json",
                        help="with --render: compare.py's results.json, for the ratio to DeepCTR-Torch")
    args = parser.parse_args()
    if args.render:
        peers = json.loads(args.compare.read_text()) if args.compare.exists() else None
        print(render([json.loads(path.read_text()) for path in args.render], peers), end="")
        return 0
    torch.manual_seed(0)
    rates = sustained_flops(args.threads)
    peak = max(rates.values())
    result = {"machine": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__,
              "sustained_flops": rates, "models": {}}
    spec, dataset = SPEC, None
    if args.measure:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from gpu import step_throughput  # noqa: PLC0415 - a sibling benchmark script

        from moe_mlora.data import DatasetConfig, prepare_dataset  # noqa: PLC0415
        from moe_mlora.experiments.records import code_version, numerics_description  # noqa: PLC0415

        dataset = prepare_dataset(DatasetConfig("movielens-1m", "gender"))
        spec = dataset.spec
        result["machine"] = numerics_description()["cpu_model"]
        version = code_version()
        result["commit"] = (version["commit"] or "?")[:7] + (" with uncommitted changes" if version["dirty"] else "")
    print(f"sustained fp32 GEMM at the towers' shapes ({args.threads} thread(s)): "
          + ", ".join(f"{k}: {v / 1e9:.1f} GFLOP/s" for k, v in rates.items()))
    print(f"{'model':<10} {'train FLOP/row':>15} {'infer FLOP/row':>15} {'train ceiling rows/s':>21} "
          f"{'infer ceiling rows/s':>21}")
    for name in MODELS:
        model = build_model(name, spec)
        train_flops, _ = count(model, BATCH, True, spec)
        infer_flops, _ = count(model, INFER_BATCH, False, spec)
        per_train, per_infer = train_flops / BATCH, infer_flops / INFER_BATCH
        row = result["models"][name] = {"train_flops_per_row": per_train, "infer_flops_per_row": per_infer,
                                        "train_ceiling_rows_per_s": peak / per_train,
                                        "infer_ceiling_rows_per_s": peak / per_infer}
        print(f"{name:<10} {per_train:>15,.0f} {per_infer:>15,.0f} {peak / per_train:>21,.0f} {peak / per_infer:>21,.0f}")
        if dataset is not None:
            measured = step_throughput(name, dataset, torch.device("cpu"), "fp32", infer_rows=204_800)
            row.update(measured, train_share=measured["train_rows_per_s"] / row["train_ceiling_rows_per_s"],
                       infer_share=measured["infer_rows_per_s"] / row["infer_ceiling_rows_per_s"])
            print(f"{'':<10} measured: train {measured['train_rows_per_s']:,.0f} rows/s "
                  f"({100 * row['train_share']:.0f}%), inference {measured['infer_rows_per_s']:,.0f} rows/s "
                  f"({100 * row['infer_share']:.0f}%)", flush=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
