"""Where a sweep's time goes, from its run records alone (no rerun): per backbone, approach and phase, the
seconds spent in training steps, in validation (selection and early stopping), and outside any phase
(data preparation, the test evaluation, diagnostics, files).

    python benchmarks/grid_time.py docs/results/ml1m/records --commit 91ead99 > docs/benchmarks/ml1m-grid-time.md

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


def phase_rows(results: Path, commit: str | None = None) -> pd.DataFrame:
    rows = []
    for path in sorted(results.glob("*/result.json")):
        record = json.loads(path.read_text())
        if record["status"] != "ok":
            continue
        if commit and not record["code"].get("commit", "").startswith(commit):
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


def markdown(frame: pd.DataFrame, source: str, workers: int = 2, target_minutes: float = 120) -> str:
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
    return "\n".join(lines) + "\n" + against_target(frame, workers, target_minutes)


def against_target(frame: pd.DataFrame, workers: int, target_minutes: float) -> str:
    """The grid's run time against a wall-time target on `workers` parallel workers, and where the excess is."""
    total = frame.total_s.sum() / 60
    wall = total / workers
    by_model = frame.groupby("model").total_s.sum().sort_values(ascending=False) / 60
    slow = by_model.index[:2]
    rest = total - by_model[slow].sum()
    return "\n".join([
        "", f"## Against the target of {target_minutes:.0f} minutes of wall time on {workers} workers", "",
        f"- The summed run time, {total:.0f} min, packed perfectly onto {workers} workers, is {wall:.0f} min of wall "
        f"time: {wall / target_minutes:.1f}x the target. The target needs every run {wall / target_minutes:.1f}x faster.",
        f"- {slow[0]} and {slow[1]} are {by_model[slow].sum() / total:.0%} of it. Without them the other backbones "
        f"take {rest / workers:.0f} min on {workers} workers.",
        f"- Training steps are {frame.train_s.sum() / 60 / total:.0%} of the time. [ceiling.md](ceiling.md) measures "
        "them against this CPU's arithmetic ceiling: what is left per step is element-wise work (dropout, ReLU, "
        "the embedding gradient, Adam), not waste in the loop. Validation is "
        f"{frame.valid_s.sum() / 60 / total:.0%}, everything outside the phases {frame.other_s.sum() / 60 / total:.0%}.",
        "- Run times are wall-clock while the machine also did other work (the records name their threads and "
        "machine), so they are upper bounds for an idle machine.", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a folder of run folders (each with a result.json)")
    parser.add_argument("--commit", help="only the records of this commit (one sweep's), e.g. the Table-1 grid's")
    parser.add_argument("--workers", type=int, default=2, help="parallel workers the target assumes")
    parser.add_argument("--target-minutes", type=float, default=120, help="the wall-time target (issue #19: 2 hours)")
    args = parser.parse_args()
    print(markdown(phase_rows(args.results, args.commit), str(args.results), args.workers, args.target_minutes), end="")


if __name__ == "__main__":
    main()
