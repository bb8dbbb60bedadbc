"""Copy a sweep's run records (result.json and epochs.csv, never weights) into docs, then rebuild its report.

    python benchmarks/ship_records.py /work/results/ml1m docs/results/ml1m
    python benchmarks/ship_records.py /work/results/scenario-wise docs/results/scenario-wise --published scenario-wise-ml1m

The records go to DEST/records/<run>/ (the sweep's sweeps.jsonl lines beside them, merged with those already
shipped, for the wall time), and
`moe-mlora report DEST/records --out DEST` writes DEST/report.md, table1.csv, records.csv, figure2.png and (with the field's methods) methods.png.
A controlled sweep's truth.json files (not its tables) go to DEST/records/tables/<setting>/, where the
report finds each setting's oracle gap.
A record already shipped is never overwritten by a different one: a sweep reran a run (e.g. after a
schema change) and the report would silently change, so the script stops and names it.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from pathlib import Path

from moe_mlora.data.controlled import TRUTH_FILE
from moe_mlora.experiments.controlled import TABLES_FOLDER
from moe_mlora.experiments.report import write_report

SHIPPED = ("result.json", "epochs.csv")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--replace", action="store_true", help="overwrite shipped records that differ")
    parser.add_argument("--published", default=None, help="also set the runs beside a published table (report --published)")
    args = parser.parse_args()
    records = args.dest / "records"
    copied = 0
    for result in sorted(args.results.glob("*/result.json")):
        target = records / result.parent.name
        for name in SHIPPED:
            source = result.parent / name
            if not source.is_file():
                continue
            if (target / name).is_file() and not filecmp.cmp(source, target / name, shallow=False):
                if not args.replace:
                    print(f"{target / name} differs from {source}: not replaced (--replace to do so)")
                    return 1
            elif (target / name).is_file():
                continue
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / name)
            copied += name == "result.json"
    for truth in sorted((args.results / TABLES_FOLDER).glob(f"*/{TRUTH_FILE}")):  # a controlled sweep's truths
        (records / TABLES_FOLDER / truth.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(truth, records / TABLES_FOLDER / truth.parent.name / TRUTH_FILE)
    if (args.results / "sweeps.jsonl").is_file():  # merged: records from several sweep folders keep every sweep's line
        shipped = (records / "sweeps.jsonl").read_text().splitlines() if (records / "sweeps.jsonl").is_file() else []
        new = [line for line in (args.results / "sweeps.jsonl").read_text().splitlines() if line not in shipped]
        (records / "sweeps.jsonl").write_text("".join(line + "\n" for line in shipped + new))
    written = write_report(records, args.dest, published=args.published)
    print(f"{copied} new records in {records}; wrote " + ", ".join(str(p) for p in written.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
