"""Where a sweep's time goes, from its run records alone (no rerun): per backbone, approach and phase, the
seconds spent in training steps, in validation (selection and early stopping), and outside any phase
(data preparation, the test evaluation, diagnostics, files).

    python benchmarks/grid_time.py docs/results/ml1m/records > docs/benchmarks/ml1m-grid-time.md

A phase's training seconds are the sum of its epochs' (the loop times each epoch's steps); the rest of the
phase is validation. A MoE-MLoRA phase 1 that reused its Base run's backbone cost nothing in this run and
is left out (its time is the Base run's). Run seconds are wall-clock per run, so they include whatever else
the machine did meanwhile: shares are meaningful, absolute seconds only on the machine and load they name.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections import defaultdict
from pathlib import Path

import pandas as pd


def phase_rows(results: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(results.glob("*/result.json")):
        record = json.loads(path.read_text())
        if record["status"] != "ok":
            continue
        config = record["config"]
        base = dict(run=path.parent.name, model=config["model"], approach=config["approach"]["approach"],
                    split=config["data"]["split_by"], commit=record["code"].get("commit", "?")[:7])
        in_phases = 0.0
        for phase in record["phases"]:
            if "reused the Base run's backbone" in (phase.get("note") or ""):
                continue
            train = sum(epoch["seconds"] for epoch in phase["history"])
            rows.append({**base, "part": phase["phase"], "train_s": train, "valid_s": phase["seconds"] - train,
                         "epochs": len(phase["history"]), "capped": phase.get("capped_groups", 0)})
            in_phases += phase["seconds"]
        rows.append({**base, "part": "outside phases", "train_s": 0.0, "valid_s": 0.0,
                     "other_s": max(record["seconds"] - in_phases, 0.0), "epochs": 0, "capped": 0})
    frame = pd.DataFrame(rows).fillna({"other_s": 0.0})
    frame["total_s"] = frame.train_s + frame.valid_s + frame.other_s
    return frame


def markdown(frame: pd.DataFrame, source: str) -> str:
    total = frame.total_s.sum()
    commits = ", ".join(sorted(frame.commit.unique()))
    try:
        here = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        here = "?"
    lines = [f"# Where the grid's time goes ({source})", "",
             f"{frame.run.nunique()} runs (records of commit {commits}), {total / 60:.1f} min of run time summed. "
             f"Made by `benchmarks/grid_time.py` at commit {here} from the records alone.", "",
             "## By component", "",
             "| component | minutes | share |", "|---|---|---|"]
    for name, column in (("training steps", "train_s"), ("validation (selection, early stopping)", "valid_s"),
                         ("outside phases (data, test evaluation, diagnostics, files)", "other_s")):
        lines.append(f"| {name} | {frame[column].sum() / 60:.1f} | {frame[column].sum() / total:.0%} |")
    for key, title in (("model", "backbone"), ("approach", "approach")):
        grouped = frame.groupby(key).agg(total_s=("total_s", "sum"), train_s=("train_s", "sum"),
                                         valid_s=("valid_s", "sum"), runs=("run", "nunique"))
        grouped = grouped.sort_values("total_s", ascending=False)
        lines += ["", f"## By {title}", "", f"| {title} | runs | minutes | share | per run (min) | training | validation |",
                  "|---|---|---|---|---|---|---|"]
        for name, row in grouped.iterrows():
            lines.append(f"| {name} | {int(row.runs)} | {row.total_s / 60:.1f} | {row.total_s / total:.0%} | "
                         f"{row.total_s / 60 / row.runs:.2f} | {row.train_s / row.total_s:.0%} | {row.valid_s / row.total_s:.0%} |")
    moe = frame[frame.approach == "moe-mlora"]
    if not moe.empty:
        parts = moe.groupby("part").agg(minutes=("total_s", lambda s: s.sum() / 60), epochs=("epochs", "mean"),
                                        capped=("capped", "sum"), runs=("run", "nunique"))
        lines += ["", "## MoE-MLoRA by phase (phase 1 reused from Base where it could be)", "",
                  "| phase | runs | minutes | mean epochs | groups ended by the epoch cap |", "|---|---|---|---|---|"]
        for name, row in parts.iterrows():
            lines.append(f"| {name} | {int(row.runs)} | {row.minutes:.1f} | {row.epochs:.1f} | {int(row.capped)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a folder of run folders (each with a result.json)")
    args = parser.parse_args()
    print(markdown(phase_rows(args.results), str(args.results)), end="")


if __name__ == "__main__":
    main()
