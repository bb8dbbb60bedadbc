"""Rerun recorded runs from their own configs and compare test WAUC digit for digit (numerics unchanged?).

    MOE_MLORA_DATA_DIR=../shared/data python benchmarks/rerun_records.py results/ml100k --pattern gender-deepfm -n 3

Each record is retrained with the threads it recorded; the same code on the same machine reproduces it
bitwise, so any difference means a change reached the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from moe_mlora.experiments.config import RunConfig
from moe_mlora.experiments.run import execute_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--pattern", default="", help="only run folders whose name contains this")
    parser.add_argument("-n", type=int, default=3, help="at most this many records")
    args = parser.parse_args()
    changed = 0
    for path in sorted(args.results.glob(f"*{args.pattern}*/result.json"))[:args.n]:
        record = json.loads(path.read_text())
        config = RunConfig.from_dict(record["config"])
        if config.key() != record["key"]:
            print(f"{path.parent.name}: its key changed ({record['key']} -> {config.key()})")
            changed += 1
            continue
        started = time.perf_counter()
        wauc = execute_run(config, None, reuse_base=False).test.wauc
        same = wauc == record["test"]["wauc"]
        changed += not same
        print(f"{path.parent.name}: recorded {record['test']['wauc']!r}, now {wauc!r}, "
              f"{'identical' if same else 'DIFFERENT'} ({time.perf_counter() - started:.0f} s)", flush=True)
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
