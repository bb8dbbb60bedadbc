"""Rerun recorded runs from their own configs and compare their test WAUC with the record.

    # every record whose folder name contains a pattern (at most -n of them), digit for digit:
    MOE_MLORA_DATA_DIR=../shared/data python benchmarks/rerun_records.py results/ml100k --pattern gender-deepfm -n 3
    # a sample of shipped records, every arm represented, each difference against a stated tolerance:
    MOE_MLORA_DATA_DIR=../shared/data python benchmarks/rerun_records.py docs/results/ml1m/records --sample 6
    # each rerun killed (SIGKILL) after 60 s of training, then resumed from what it had saved:
    MOE_MLORA_DATA_DIR=../shared/data python benchmarks/rerun_records.py docs/results/ml100k/records --sample 3 --kill-after 60

Each record is retrained with the threads it recorded. The same code on the same numerics (CPU model and
kernel-selecting flags, torch build, BLAS/oneDNN, threads: the record's `machine.numerics`) reproduces it
bitwise. Elsewhere the last digits may move: `--tolerance` (default 5e-4 WAUC, i.e. 0.05 points, well
inside the seed-to-seed spread of a Table-1 cell) is the bound a rerun on other numerics must meet; on the
same numerics any difference is reported as a change of the code's numbers. Exit status 1 when a record
differs beyond what applies to it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

from tqdm import tqdm

from moe_mlora.errors import MoeMloraError
from moe_mlora.run_config import RunConfig
from moe_mlora.experiments.records import numerics_description
from moe_mlora.experiments.run import execute_run
from moe_mlora.training.config import torch_threads
from moe_mlora.training.resume import RESUME_FOLDER


def read_record(path: Path) -> tuple[dict | None, RunConfig | None, str]:
    """A finished record and its config, or why it cannot be rerun (damaged, not a record, not finished, no test
    result, a config this library cannot build): one line, never a traceback."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, None, f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        return None, None, "not a run record (no config section)"
    if record.get("status") != "ok":
        return None, None, f"not a finished run (status {record.get('status')!r})"
    test = record.get("test")
    if not isinstance(test, dict) or not isinstance(test.get("wauc"), (int, float)):
        return None, None, "no test result (test.wauc) to compare with"
    try:
        config = RunConfig.from_dict(record["config"])
    except (MoeMloraError, KeyError, TypeError, ValueError) as exc:
        return None, None, f"its config cannot be built ({type(exc).__name__}: {exc})"
    return record, config, ""


def sample_records(paths: list[Path], n: int, seed: int = 0) -> list[Path]:
    """n records chosen at random (seeded), every arm (approach and variant) at least once where n allows."""
    by_arm: dict[str, list[Path]] = {}
    for path in paths:
        config = read_record(path)[1]
        by_arm.setdefault(config.approach.arm, []).append(path)
    rng = random.Random(seed)
    chosen = [rng.choice(group) for _, group in sorted(by_arm.items())][:n]
    rest = [p for p in paths if p not in chosen]
    return chosen + rng.sample(rest, min(len(rest), n - len(chosen)))


def _run_into(config: RunConfig, runs: Path, data_dir: Path | None) -> None:
    tqdm.set_lock(threading.RLock())  # not a named semaphore, which a killed process would leak (as sweep workers)
    execute_run(config, runs, data_dir=data_dir, reuse_base=False)


def killed_then_resumed(config: RunConfig, data_dir: Path | None, seconds: float) -> tuple[float, str]:
    """The run started in a child process that is killed (SIGKILL: no clean-up) after `seconds`, then run here
    into the same folder, where it resumes from the state the child saved; its test WAUC and what was saved."""
    with tempfile.TemporaryDirectory() as runs:
        child = multiprocessing.get_context("spawn").Process(target=_run_into, args=(config, Path(runs), data_dir))
        child.start()
        child.join(seconds)
        if not child.is_alive():
            return execute_run(config, None, data_dir=data_dir, reuse_base=False).test.wauc, "ended before the kill"
        child.kill()
        child.join()
        saved = config.run_dir(Path(runs)) / RESUME_FOLDER
        fits = len(list(saved.glob("fit-*.pt")))
        state = f"killed after {seconds:g} s with {fits} finished fit(s)" + (
            ", an epoch of the next" if (saved / "epoch.pt").is_file() else "") + " saved"
        return execute_run(config, Path(runs), data_dir=data_dir, reuse_base=False).test.wauc, state


def same_numerics(recorded: dict, threads: int) -> bool:
    with torch_threads(threads):
        here = numerics_description()
    return bool(recorded) and recorded == here


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a folder of run folders (each with a result.json)")
    parser.add_argument("--pattern", default="", help="only run folders whose name contains this")
    parser.add_argument("-n", type=int, default=3, help="at most this many records (in name order)")
    parser.add_argument("--sample", type=int, default=0, help="instead: a seeded sample of this many, every arm represented")
    parser.add_argument("--tolerance", type=float, default=5e-4, help="allowed |WAUC difference| on other numerics")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--kill-after", type=float, default=None,
                        help="kill each rerun after this many seconds and resume it from its saved state")
    args = parser.parse_args()
    if not args.results.is_dir():
        print(f"{args.results}: no such folder")
        return 2
    paths, failures, skipped = [], 0, 0
    for path in sorted(args.results.glob(f"*{args.pattern}*/result.json")):
        record, _, problem = read_record(path)
        if record is not None:
            paths.append(path)
        elif not problem.startswith("not a finished run"):  # failed runs are not rerun, and not a fault
            print(f"{path.parent.name}: SKIPPED, {problem}")
            skipped += 1
    paths = sample_records(paths, args.sample) if args.sample else paths[:args.n]
    if not paths:
        print(f"no finished records under {args.results}")
        return 1
    print(f"{'run':<60} {'recorded':>10} {'rerun':>10} {'diff':>9}  verdict")
    for path in paths:
        record, config, _ = read_record(path)
        if config.key() != record.get("key"):
            print(f"{path.parent.name}: its key changed ({record['key']} -> {config.key()})")
            failures += 1
            continue
        started = time.perf_counter()
        if args.kill_after is None:
            wauc, how = execute_run(config, None, data_dir=args.data_dir, reuse_base=False).test.wauc, ""
        else:
            wauc, how = killed_then_resumed(config, args.data_dir, args.kill_after)
        difference = wauc - record["test"]["wauc"]
        same = same_numerics(record.get("machine", {}).get("numerics", {}), config.train.threads)
        if difference == 0:
            verdict = "identical"
        elif same:
            verdict = "DIFFERENT on the same numerics (the code's numbers changed)"
        elif abs(difference) <= args.tolerance:
            verdict = f"within {args.tolerance:g} (other numerics)"
        else:
            verdict = f"BEYOND {args.tolerance:g} (other numerics)"
        failures += verdict.startswith(("DIFFERENT", "BEYOND"))
        print(f"{path.parent.name:<60} {record['test']['wauc']:>10.6f} {wauc:>10.6f} {difference:>+9.1e}  {verdict} "
              f"({time.perf_counter() - started:.0f} s{'; ' + how if how else ''})", flush=True)
    print(f"{len(paths) - failures} of {len(paths)} reproduce" + (f"; {skipped} damaged record(s) skipped" if skipped else ""))
    return 1 if failures or skipped else 0


if __name__ == "__main__":
    sys.exit(main())
