"""Does patience 3 stop on the initial plateau? Issue #21's check, on the controlled generator and on ML-1M.

    python benchmarks/early_stopping.py --out docs/results/controlled/early-stopping.md \
        [--settings h0.5] [--models deepfm] [--seeds 1,2,3] [--records docs/results/ml1m/records]

1. The generator: Base runs on tables of moe_mlora.experiments.controlled.SETTINGS under several stopping rules
   (by default patience 3, the paper's; patience 10; patience 3 with a floor of 5 epochs, `min_epochs`; any
   TrainConfig knobs with --rules), the same seeds for every rule. Per setting and rule: mean test WAUC, the
   paired difference against the first rule, the chosen epoch and the epochs run.
2. ML-1M, from the shipped records alone: in every training phase that early stopping ended, the longest run of
   non-improving epochs that was followed by a later improvement. A stall of 3 or more would have been cut
   short by patience 3 (and is then invisible in the records); the distribution shows how close the runs came.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from moe_mlora.data import DatasetConfig
from moe_mlora.run_config import RunConfig
from moe_mlora.experiments.controlled import SETTINGS, write_tables
from moe_mlora.experiments.run import execute_run
from moe_mlora.experiments.statistics import summarise
from moe_mlora.models import ModelConfig
from moe_mlora.training.approaches import ApproachConfig
from moe_mlora.training.config import TrainConfig

RULES = "patience=3;patience=10;patience=3,min_epochs=5"  # the first is the reference the others are paired with


MODEL_FIELDS = {spec.name for spec in fields(ModelConfig)}  # a rule's knob goes to the model config or the train config


def parse_rules(text: str) -> dict[str, dict]:
    """'patience=3;patience=3,min_epochs=30' -> {'patience 3': {...}, 'patience 3, min epochs 30': {...}}."""
    rules = {}
    for rule in text.split(";"):
        knobs = {key.strip(): float(value) if "." in value else int(value)
                 for key, value in (part.split("=") for part in rule.split(","))}
        rules[", ".join(f"{key.replace('_', ' ')} {value}" for key, value in knobs.items())] = knobs
    return rules


def longest_stall(scores: list[float]) -> int:
    """The longest run of non-improving epochs that a later improvement ended."""
    best, run, longest = float("-inf"), 0, 0
    for score in scores:
        if score > best:
            best, longest, run = score, max(longest, run), 0
        else:
            run += 1
    return longest


def generator_runs(settings: list[str], models: list[str], seeds: list[int], work: Path,
                   rules: dict[str, dict]) -> list[dict]:
    tables = write_tables({name: SETTINGS[name] for name in settings}, work / "tables")
    rows = []
    for name, path in tables.items():
        data = DatasetConfig("table", split_by="domain", features=("user", "item"), table_path=str(path),
                             label_column="label")
        for model in models:
            for seed in seeds:
                for rule, knobs in rules.items():
                    model_knobs = {k: v for k, v in knobs.items() if k in MODEL_FIELDS}
                    train_knobs = {k: v for k, v in knobs.items() if k not in MODEL_FIELDS}
                    train = replace(TrainConfig(progress=False, threads=1, seed=seed), **train_knobs)
                    started = time.perf_counter()
                    record = execute_run(RunConfig(data, model, ModelConfig(**model_knobs), ApproachConfig("base"),
                                                   train))
                    phase = record.phases[0]
                    rows.append({"setting": name, "model": model, "seed": seed, "rule": rule,
                                 "wauc": 100 * record.test.wauc, "best_epoch": phase.best_epoch,
                                 "epochs": len(phase.history), "seconds": time.perf_counter() - started,
                                 "stall": longest_stall([e.valid_score for e in phase.history])})
                    print(name, model, seed, rule, f"{rows[-1]['wauc']:.2f}", flush=True)
    return rows


def generator_markdown(rows: list[dict]) -> list[str]:
    reference_rule = rows[0]["rule"]
    lines = [f"| setting | model | rule | test WAUC (%) | Δ vs {reference_rule} (points, ± 95% CI) | chosen epoch | epochs run |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    groups = defaultdict(list)
    for row in rows:
        groups[(row["setting"], row["model"], row["rule"])].append(row)
    for (setting, model, rule), runs in groups.items():
        reference = {r["seed"]: r["wauc"] for r in groups[(setting, model, reference_rule)]}
        deltas = [r["wauc"] - reference[r["seed"]] for r in runs if r["seed"] in reference]
        delta = summarise(np.array(deltas))
        ci = f" ± {delta.ci95:.2f}" if delta.ci95 is not None else ""
        lines.append(f"| {setting} | {model} | {rule} | {statistics.mean(r['wauc'] for r in runs):.2f} | "
                     f"{delta.mean:+.2f}{ci} | {statistics.mean(r['best_epoch'] for r in runs):.1f} | "
                     f"{statistics.mean(r['epochs'] for r in runs):.1f} |")
    return lines


def records_markdown(folder: Path) -> list[str]:
    stalls: dict[str, Counter] = defaultdict(Counter)
    for path in sorted(folder.glob("*/result.json")):
        record = json.loads(path.read_text())
        for phase in record["phases"]:
            if phase["phase"] in ("base", "mlora", "joint") and phase["history"]:  # phase 1 of MoE-MLoRA is Base's
                stalls[phase["phase"]][longest_stall([e["valid_score"] for e in phase["history"]])] += 1
    lines = [f"From the {sum(1 for _ in folder.glob('*/result.json'))} records in `{folder}`: per phase, how many "
             "training phases had each longest stall (non-improving epochs followed by a later improvement).", "",
             "| phase | " + " | ".join(f"stall {s}" for s in range(4)) + " |", "| --- |" + " ---: |" * 4]
    for phase, counts in sorted(stalls.items()):
        lines.append(f"| {phase} | " + " | ".join(str(counts.get(s, 0)) for s in range(4)) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="the markdown to write (its JSON beside it)")
    parser.add_argument("--settings", default="h0.5")
    parser.add_argument("--models", default="deepfm")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--rules", default=RULES, help="stopping rules, ';'-separated, each 'name=value,...' "
                        "of TrainConfig or ModelConfig knobs; the first is the reference")
    parser.add_argument("--records", type=Path, default=Path("docs/results/ml1m/records"))
    parser.add_argument("--work", type=Path, default=Path("results/early-stopping"))
    parser.add_argument("--render", type=Path, help="rewrite --out from this JSON of earlier runs, running nothing")
    parser.add_argument("--records-only", action="store_true",
                        help="print the stall table of --records (any folder of run records) and run nothing")
    args = parser.parse_args()
    if args.records_only:
        print("\n".join(records_markdown(args.records)))
        return
    if args.out is None:
        parser.error("--out is required unless --records-only")
    if args.render:
        rows = json.loads(args.render.read_text())
        commit = "(see the JSON's runs)"
    else:
        rows = generator_runs(args.settings.split(","), args.models.split(","), [int(s) for s in args.seeds.split(",")],
                              args.work, parse_rules(args.rules))
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
        for row in rows:
            row["commit"] = commit
    commit = rows[0].get("commit", commit)
    oracles = []
    for name in dict.fromkeys(row["setting"] for row in rows):
        truth = args.work / "tables" / name / "truth.json"
        if truth.is_file():
            values = json.loads(truth.read_text())
            oracles.append(f"- {name}: the best domain-blind model scores {100 * values['shared_oracle_wauc']:.2f}, the true "
                           f"per-domain model {100 * values['per_domain_oracle_wauc']:.2f} (test WAUC %, its truth.json)")
    text = ["# Does patience 3 stop on the initial plateau? (issue #21)", "",
            f"Made by `benchmarks/early_stopping.py` at commit {commit}; Base runs, one thread each, the same seeds "
            "for every rule. Δ: per-seed paired difference of test WAUC against the first rule, mean ± 95% t-interval "
            "(not corrected for multiplicity).", "", "## The controlled generator", "", *generator_markdown(rows), "",
            "What a perfect model would score on these tables:", "", *oracles, "",
            "## ML-1M (the shipped Table-1 records)", "", *records_markdown(args.records), ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(text))
    if not args.render:
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
