"""One training step of a method's tower part (forward and backward), as the cost-per-domain sections of
docs/benchmarks/changes.md measure it: input 80 wide, tower (256, 128, 64), 1,024 rows spread evenly over the
domains, one thread; prints the median of --steps steps (after 5 warm-up steps) in ms.

    python benchmarks/tower_step.py mmoe --domains 21
Run it in fresh processes alternating the two sides of a change (e.g. two worktrees), as farm-bench does.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from moe_mlora.layers import Tower
from moe_mlora.methods import METHODS
from moe_mlora.training.approaches import ApproachConfig


class _Model(torch.nn.Module):
    """Just enough of a backbone for attach: one tower and the config fields the parts read."""

    def __init__(self, tower: Tower) -> None:
        super().__init__()
        self.tower = tower
        self.config = type("Config", (), {"dnn_dropout": 0.5, "embedding_dim": 8})()
        self.flat_dim = 80


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("arm")
    parser.add_argument("--domains", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = _Model(Tower(80, (256, 128, 64), 0.5))
    approach = ApproachConfig.from_arm(args.arm)
    METHODS[approach.approach].attach(model, args.domains, 1, approach)
    model.train()
    inputs = torch.randn(1024, 80)
    domains = torch.arange(1024) % args.domains
    times = []
    for step in range(args.steps + 5):
        start = time.perf_counter()
        model.tower(inputs, domains).sum().backward()
        if step >= 5:
            times.append(time.perf_counter() - start)
    print(f"{statistics.median(times) * 1000:.2f}")


if __name__ == "__main__":
    main()
