"""Per-run wall time of shipped records under two commits, side by side (issue #19's "before and after").

    git worktree add ../before 91ead99 && git worktree add ../after HEAD
    MOE_MLORA_DATA_DIR=../shared/data python benchmarks/run_wall_time.py docs/results/ml1m/records \\
        --pattern gender- --approach base --seed 1 --tree before=../before --tree after=../after \\
        --repeats 3 --out docs/benchmarks/ml1m-run-time.jsonl
    python benchmarks/run_wall_time.py --render docs/benchmarks/ml1m-run-time.jsonl > docs/benchmarks/ml1m-run-time.md

Each chosen record is retrained from its own config (its recorded threads) once per tree per repeat, every run
in a fresh process that imports the tree's own code. The trees' runs of one record start together, one process
per tree, so they share the machine's state (other load, clocks, memory bandwidth) and their ratio is paired;
with two trees on two cores each run has a core. Reported per record: the median seconds per tree over the
repeats, the median of the paired ratios, and whether the trees' test WAUCs agree (a speed change must not
move a number). Seconds are the process's wall time (start-up, data loading from the cache and the run) and
the run's own `seconds`. Each line of --out is written when its pair ends, so a stopped run keeps what it
measured, and a rerun with the same --out skips the (record, repeat) pairs already there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from moe_mlora.experiments.records import numerics_description

# One run in a fresh interpreter: the tree's code on sys.path, the record's config, its result as JSON.
_CHILD = """
import json, sys
from moe_mlora.run_config import RunConfig
from moe_mlora.experiments.run import execute_run
record = json.loads(open(sys.argv[1]).read())
config = RunConfig.from_dict(record["config"])
assert config.key() == record["key"], "this tree gives the record another key"
result = execute_run(config, None, reuse_base=False)
print(json.dumps({"test_wauc": result.test.wauc, "run_seconds": result.seconds}))
"""


def run_in_tree(tree: Path, record: Path) -> dict:
    environment = {**os.environ, "PYTHONPATH": str(tree.resolve() / "src")}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, str(record)], env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{tree} on {record.parent.name}: {done.stderr.strip().splitlines()[-1:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_seconds": time.perf_counter() - started}


def tree_commit(tree: Path) -> str:
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def measure(args: argparse.Namespace) -> None:
    trees = dict(item.split("=", 1) for item in args.tree)
    records = sorted(path for path in args.records.glob(f"*{args.pattern}*/result.json")
                     if (config := json.loads(path.read_text())["config"])["approach"]["approach"] == args.approach
                     and config["train"]["seed"] == args.seed)
    if not records:
        raise SystemExit(f"no {args.approach} records of seed {args.seed} matching {args.pattern!r} in {args.records}")
    done = set()
    if args.out.exists():
        done = {(line["record"], line["repeat"]) for line in map(json.loads, args.out.read_text().splitlines())}
    commits = {name: tree_commit(Path(path)) for name, path in trees.items()}
    cpu = numerics_description()["cpu_model"]
    for repeat in range(1, args.repeats + 1):
        # alternate the record order between repeats so no record always runs first
        for record in (records if repeat % 2 else records[::-1]):
            name = record.parent.name
            if (name, repeat) in done:
                continue
            with ThreadPoolExecutor(len(trees)) as pool:
                futures = {tree: pool.submit(run_in_tree, Path(path), record) for tree, path in trees.items()}
                runs = {tree: future.result() for tree, future in futures.items()}
            line = {"record": name, "repeat": repeat, "runs": runs, "commits": commits, "cpu": cpu,
                    "cpu_count": os.cpu_count()}
            with args.out.open("a") as out:
                out.write(json.dumps(line) + "\n")
            print(name, repeat, {tree: f"{run['wall_seconds']:.0f}s" for tree, run in runs.items()}, flush=True)


def render(path: Path) -> str:
    lines = [json.loads(text) for text in path.read_text().splitlines()]
    trees = list(lines[0]["runs"])
    first, last = trees[0], trees[-1]
    by_record: dict[str, list[dict]] = {}
    for line in lines:
        by_record.setdefault(line["record"], []).append(line)
    commits = ", ".join(f"{tree} = {lines[0]['commits'][tree]}" for tree in trees)
    repeats = sorted({len(group) for group in by_record.values()})
    out = [f"# Per-run wall time, {first} and {last}", "",
           f"Made by `benchmarks/run_wall_time.py` from `{path.name}`. Trees: {commits}. Machine: {lines[0]['cpu']}, "
           f"{lines[0]['cpu_count']} cores; each run one thread (the record's), the trees' runs of a record started "
           f"together. Medians over {'/'.join(map(str, repeats))} repeats in fresh processes; the ratio is the median "
           f"of the paired ratios {last} / {first} of process wall time (below 1: {last} is faster).", "",
           f"| record | {first} s | {last} s | ratio | run s ({first} / {last}) | test WAUC equal |",
           "| --- | ---: | ---: | ---: | ---: | --- |"]
    for record, group in sorted(by_record.items()):
        wall = {tree: statistics.median(line["runs"][tree]["wall_seconds"] for line in group) for tree in trees}
        run = {tree: statistics.median(line["runs"][tree]["run_seconds"] for line in group) for tree in trees}
        ratio = statistics.median(line["runs"][last]["wall_seconds"] / line["runs"][first]["wall_seconds"]
                                  for line in group)
        equal = all(len({line["runs"][tree]["test_wauc"] for tree in trees}) == 1 for line in group)
        out.append(f"| {record.rsplit('-', 1)[0]} | {wall[first]:.0f} | {wall[last]:.0f} | {ratio:.2f} | "
                   f"{run[first]:.0f} / {run[last]:.0f} | {'yes' if equal else 'NO'} |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", type=Path, nargs="?", help="a folder of run folders (each with a result.json)")
    parser.add_argument("--pattern", default="")
    parser.add_argument("--approach", default="base")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH of a checkout (give two, before first)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--render", type=Path, help="print the markdown of this jsonl, measuring nothing")
    args = parser.parse_args()
    if args.render:
        print(render(args.render), end="")
    elif args.records and args.out and len(args.tree) >= 2:
        measure(args)
    else:
        parser.error("give records, --out and two --tree (or --render)")


if __name__ == "__main__":
    main()
