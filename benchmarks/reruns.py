"""The ML-1M reruns of issues #38 and #39 as one resumable sweep, in the order that makes whole comparisons first.

    python benchmarks/reruns.py RESULTS_DIR [--workers N] [--only NAME[,NAME]] [--list]

Campaigns, in order (a sweep cut short holds the earliest ones whole; a rerun resumes):

* table1-s1 / -s2 / -s3: per seed, for every split x backbone, Base, MoE-MLoRA under the paper's selection
  (`selection=trained`) and MLoRA, all on one machine: MoE-MLoRA's phase 1 is the Base run of the same folder
  (bitwise), so every Δ of a cell is made on one CPU model.
* amd-seed1: the 15 paper-conditions records (select-by mean-auc, by-domain batches) whose seed 1 was made on
  an AMD EPYC, again (seeds 2-3 of those cells were made on the Intel Xeon this project's sessions use).
* figure2-s1 / -s2 / -s3: MoE-MLoRA by gender with k = 2, 3, 4 under the paper's selection, for DeepFM, AutoInt
  and NFM (k = 1 is Table 1's run).
* patience10: 24 Base and MLoRA runs (DeepFM, DCN, AutoInt, NFM x gender / age / occupation, seed 1) with
  patience 10, beside their patience-3 twins of table1-s1.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from moe_mlora.run_config import RunConfig
from moe_mlora.experiments.grids import parse_split
from moe_mlora.experiments.sweep import run_sweep
from moe_mlora.models import ModelConfig
from moe_mlora.training.approaches import ApproachConfig
from moe_mlora.training.config import TrainConfig

SPLITS = ("movielens-1m:gender", "movielens-1m:age", "movielens-1m:occupation")
MODELS = ("wdl", "nfm", "autoint", "pnn", "dcn", "fibinet", "deepfm", "xdeepfm")
FIGURE2_MODELS = ("deepfm", "autoint", "nfm")
PATIENCE_MODELS = ("deepfm", "dcn", "autoint", "nfm")
PAPER_SELECTION = ApproachConfig("moe-mlora", selection="trained")
AMD_RECORDS = Path(__file__).resolve().parents[1] / "docs/results/ml1m/records"


def _run(split: str, model: str, approach: ApproachConfig, seed: int, **train) -> RunConfig:
    return RunConfig(parse_split(split), model, ModelConfig(), approach, TrainConfig(seed=seed, progress=False, **train))


def table1(seed: int) -> list[RunConfig]:
    return [_run(split, model, approach, seed) for split in SPLITS for model in MODELS
            for approach in (ApproachConfig("base"), PAPER_SELECTION, ApproachConfig("mlora"))]


def figure2(seed: int) -> list[RunConfig]:
    return [_run("movielens-1m:gender", model, replace(PAPER_SELECTION, experts_per_domain=k), seed)
            for model in FIGURE2_MODELS for k in (2, 3, 4)]


def amd_seed1() -> list[RunConfig]:
    """The shipped paper-conditions records of seed 1 made on an AMD CPU, as configs (their keys unchanged)."""
    configs = []
    for path in sorted(AMD_RECORDS.glob("*/result.json")):
        record = json.loads(path.read_text())
        if record["config"]["train"]["select_by"] == "mean-auc" and "AMD" in record["machine"]["numerics"]["cpu_model"]:
            config = RunConfig.from_dict(record["config"])
            configs.append(replace(config, train=replace(config.train, progress=False)))
    return configs


def patience10() -> list[RunConfig]:
    return [_run(split, model, ApproachConfig(approach), 1, patience=10) for split in SPLITS
            for model in PATIENCE_MODELS for approach in ("base", "mlora")]


CAMPAIGNS = {
    "table1-s1": lambda: table1(1),
    "amd-seed1": amd_seed1,
    "figure2-s1": lambda: figure2(1),
    "patience10": patience10,
    "table1-s2": lambda: table1(2),
    "figure2-s2": lambda: figure2(2),
    "table1-s3": lambda: table1(3),
    "figure2-s3": lambda: figure2(3),
}


def run_campaigns(campaigns: dict, description: str) -> int:
    """The command line of a campaign script: RESULTS_DIR [--workers N] [--only NAME,...] [--list]."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--only", default="", help="campaigns to run, comma-separated (default: all, in order)")
    parser.add_argument("--list", action="store_true", help="print the runs and exit")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(campaigns)
    unknown = [n for n in names if n not in campaigns]
    if unknown:
        parser.error(f"unknown campaign(s) {unknown}; choose from {', '.join(campaigns)}")
    configs = [config for name in names for config in campaigns[name]()]
    if args.list:
        for config in configs:
            print(config.run_dir(args.results).name)
        return 0
    summary = run_sweep(configs, args.results, workers=args.workers)
    print(f"reruns: {summary.finished} finished, {summary.skipped} already recorded, {len(summary.failed)} failed")
    return 1 if summary.failed else 0


def main() -> int:
    return run_campaigns(CAMPAIGNS, __doc__)


if __name__ == "__main__":
    sys.exit(main())
