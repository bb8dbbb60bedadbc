"""benchmarks/run_wall_time.py: the before/after table is the median of paired ratios and flags moved numbers."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "run_wall_time.py"


def _module():
    spec = importlib.util.spec_from_file_location("run_wall_time", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _line(record, repeat, before_s, after_s, wauc_after=0.8):
    run = lambda seconds, wauc: {"wall_seconds": seconds, "run_seconds": seconds - 5, "test_wauc": wauc}
    return {"record": record, "repeat": repeat, "runs": {"before": run(before_s, 0.8), "after": run(after_s, wauc_after)},
            "commits": {"before": "aaa", "after": "bbb"}, "cpu": "test cpu", "cpu_count": 2}


def test_ratio_is_the_median_of_paired_ratios_and_a_moved_wauc_is_flagged(tmp_path):
    lines = [_line("m-xdeepfm-base-s1-k1", 1, 100, 50), _line("m-xdeepfm-base-s1-k1", 2, 200, 60),
             _line("m-xdeepfm-base-s1-k1", 3, 100, 90),
             _line("m-nfm-base-s1-k2", 1, 60, 60), _line("m-nfm-base-s1-k2", 2, 60, 61, wauc_after=0.81)]
    path = tmp_path / "times.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    table = _module().render(path)
    rows = {row.split(" | ")[0].lstrip("| "): row.split(" | ") for row in table.splitlines() if row.startswith("| m-")}
    # paired ratios 0.5, 0.3, 0.9: the median is 0.50 (the ratio of medians, 60/100, would be 0.60)
    assert rows["m-xdeepfm-base-s1"][1:4] == ["100", "60", "0.50"]
    assert rows["m-xdeepfm-base-s1"][-1].startswith("yes")
    assert rows["m-nfm-base-s1"][-1].startswith("NO")
    assert "before = aaa, after = bbb" in table
