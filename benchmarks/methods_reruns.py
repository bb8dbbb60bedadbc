"""The ML-1M reruns of issue #39: the field's methods as their papers define them, with the new ones and the two
baselines every multi-domain paper reports, as one resumable sweep.

    python benchmarks/methods_reruns.py RESULTS_DIR [--workers N] [--only NAME[,NAME]] [--list]

Campaigns (per seed, so a sweep cut short holds whole seeds): ml1m-s1 / -s2 / -s3, DeepFM and DCN (the parallel
backbones whose FM and cross terms a per-domain output reaches) x gender / age / occupation, each arm below beside
Base. Use the results folder of benchmarks/reruns.py: its Base runs have the same keys, so they are shared (one CPU
model per compared cell, as long as both sweeps run on it).

The other two reruns of #39 are one command each (a fixed worktree, in the background):

    # Scenario-Wise Rec's protocol, every method x 3 seeds (the table from examples/scenario_wise_ml1m.py)
    moe-mlora reproduce table1 --config examples/scenario-wise-ml1m.yaml --datasets movielens-1m:age --models dnn \\
      --moe-variant selection=trained --seeds 3 --workers 1 --results-dir RESULTS --methods "<ARMS and STAR's ablations>"
    # the controlled map's heterogeneity axis, DeepFM and DCN x 5 seeds
    moe-mlora reproduce controlled --settings h0,h0.25,h0.5,h0.75,h1 --methods "<ARMS>" --seeds 5 --results-dir RESULTS
"""

from __future__ import annotations

import sys

from reruns import SPLITS, _run, run_campaigns

from moe_mlora.run_config import RunConfig
from moe_mlora.training.approaches import ApproachConfig

MODELS = ("deepfm", "dcn")
# The changed methods in their papers' form, the new ones, and the baselines (Base is every campaign's reference).
ARMS = ("star[output=domain]", "star", "shared-bottom[output=domain]", "mmoe[output=domain]", "ple[output=domain]",
        "ppnet[prior=fields]", "pepnet[prior=fields]", "separate", "apg", "hamur", "m2m")


def ml1m(seed: int) -> list[RunConfig]:
    from dataclasses import replace

    configs = [_run(split, model, ApproachConfig.from_arm(arm), seed)
               for arm in ("base", *ARMS) for split in SPLITS for model in MODELS]
    without_domain = [_run(split, model, ApproachConfig("base"), seed) for split in SPLITS for model in MODELS]
    return configs + [replace(c, data=replace(c.data, domain_as_feature=False)) for c in without_domain]


CAMPAIGNS = {f"ml1m-s{seed}": (lambda seed=seed: ml1m(seed)) for seed in (1, 2, 3)}

if __name__ == "__main__":
    sys.exit(run_campaigns(CAMPAIGNS, __doc__))
