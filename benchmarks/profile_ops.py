"""Where moe-mlora's time goes: torch.profiler's top operators for one training epoch of each benchmark
model on ML-100K, and for MoE-MLoRA inference at 21 domains. Same configuration as compare.py.

Usage: .venv-bench/bin/python benchmarks/profile_ops.py [--out docs/benchmarks/profiles.md]
(run.sh runs it after the comparison).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from compare import BATCH, DROPOUT, EMBEDDING, HIDDEN, INFER_BATCH, LR, MODELS, load_data, synthetic_table

TOP_OPERATORS = 12


def tensor_part(codes, labels):
    from moe_mlora.batches import TensorPart

    return TensorPart(torch.from_numpy(codes), torch.from_numpy(codes[:, 2].copy()), torch.from_numpy(labels))


def spec_for(cards, n_domains):
    from moe_mlora.features import FeatureSpec

    return FeatureSpec(("user_id", "item_id", "domain"), tuple(cards), tuple(map(str, range(n_domains))))


def top_operators(prof) -> tuple[str, float]:
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    lines = ["| operator | calls | self CPU ms | share |", "| --- | --- | --- | --- |"]
    for event in events[:TOP_OPERATORS]:
        lines.append(f"| `{event.key}` | {event.count} | {event.self_cpu_time_total / 1000:.1f} | "
                     f"{event.self_cpu_time_total / total:.0%} |")
    return "\n".join(lines), total / 1000


def training_profile(model_name: str) -> str:
    from moe_mlora.models import build_model
    from moe_mlora.methods.lora import BASE_PHASE
    from moe_mlora.training.config import TrainConfig, set_seed
    from moe_mlora.training.loop import train_epoch
    from moe_mlora.training.optim import ModelAdam

    codes, labels, cards, n_domains = load_data("ml-100k")
    part = tensor_part(codes, labels)
    set_seed(0)
    extra = {"attention_dim": EMBEDDING // 4, "attention_heads": 4} if model_name == "autoint" else {}
    model = build_model(model_name, spec_for(cards, n_domains), embedding_dim=EMBEDDING, dnn_hidden=HIDDEN,
                        dnn_dropout=DROPOUT, **extra)
    config = TrainConfig(learning_rate=LR, batch_size=BATCH, progress=False)
    optimizer = ModelAdam(model, list(model.parameters()), LR)
    train_epoch(model, BASE_PHASE, part, optimizer, config, torch.Generator().manual_seed(0))  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_epoch(model, BASE_PHASE, part, optimizer, config, torch.Generator().manual_seed(1))
    table, total_ms = top_operators(prof)
    return f"### {model_name}: one training epoch, {len(part):,} rows (operators' self time {total_ms:,.0f} ms)\n\n{table}\n"


def moe_inference_profile() -> str:
    from moe_mlora.adapters import AdapterConfig, attach_adapters
    from moe_mlora.models import build_model
    from moe_mlora.training.evaluation import predict_logits

    codes, labels, cards, n_domains = synthetic_table(200_000, 21)
    part = tensor_part(codes, labels)
    torch.manual_seed(0)
    model = build_model("deepfm", spec_for(cards, n_domains))
    attach_adapters(model, AdapterConfig("moe-mlora", n_domains, 1, lora_reduce=32))
    predict_logits(model, part, INFER_BATCH)  # warm-up (each call merges the experts per domain afresh)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        predict_logits(model, part, INFER_BATCH)
    table, total_ms = top_operators(prof)
    return (f"### MoE-MLoRA (DeepFM, 21 domains, k = 1): inference over {len(part):,} rows "
            f"(operators' self time {total_ms:,.0f} ms)\n\n{table}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/benchmarks/profiles.md")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    sections = ["# Profiles", "",
                f"torch.profiler, CPU, {torch.get_num_threads()} threads, torch {torch.__version__}; top {TOP_OPERATORS} "
                "operators by self time. Produced by `benchmarks/profile_ops.py`.", ""]
    for model_name in args.models.split(","):
        sections.append(training_profile(model_name))
        print(sections[-1], flush=True)
    sections.append(moe_inference_profile())
    print(sections[-1])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(sections))


if __name__ == "__main__":
    main()
