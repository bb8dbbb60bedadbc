"""benchmarks/rerun_records.py and benchmarks/gpu.py on damaged input: one line, never a traceback."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "rerun_records.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_damaged_records_are_each_skipped_in_one_line_and_the_folder_goes_on(tmp_path):
    source = sorted((REPO / "docs/results/ml100k/records").glob("*deepfm-base-s1-*"))[0]
    good = json.loads((source / "result.json").read_text())
    damaged = {
        "truncated": (source / "result.json").read_text()[:200],
        "a-list": "[1, 2]",
        "no-config": json.dumps({k: v for k, v in good.items() if k != "config"}),
        "unknown-model": json.dumps({**good, "config": {**good["config"], "model": "lr"}}),
        "no-test": json.dumps({k: v for k, v in good.items() if k != "test"}),
    }
    for name, text in damaged.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text(text)
    done = _run(str(tmp_path))
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    lines = [line for line in done.stdout.splitlines() if "SKIPPED" in line]
    assert sorted(line.split(":")[0] for line in lines) == sorted(damaged), done.stdout
    assert "unknown model 'lr'" in done.stdout and "no test result" in done.stdout
    assert done.returncode == 1


def test_a_missing_folder_is_named_as_missing(tmp_path):
    done = _run(str(tmp_path / "nowhere"))
    assert done.returncode == 2 and "nowhere: no such folder" in done.stdout and "Traceback" not in done.stderr


def test_the_gpu_benchmark_renders_one_processes_step_result_and_refuses_a_foreign_file_in_one_line(tmp_path):
    shipped = json.loads((REPO / "docs/benchmarks/gpu.json").read_text())
    one = {"machine": shipped["machine"], "step": shipped["step_repeats"][0], "runs": [], "skipped": []}
    (tmp_path / "step.json").write_text(json.dumps(one))
    script = REPO / "benchmarks" / "gpu.py"
    done = subprocess.run([sys.executable, str(script), "--render", str(tmp_path / "step.json")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "over 1 process" in done.stdout and "| wdl |" in done.stdout, done.stderr
    (tmp_path / "other.json").write_text("{}")
    done = subprocess.run([sys.executable, str(script), "--render", str(tmp_path / "other.json")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and "not a gpu.json this script can render" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_rerun_campaigns_list_their_runs_and_the_methods_campaign_shares_the_table1_base_runs(tmp_path):
    def listed(script: str, *args: str) -> list[str]:
        done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), str(tmp_path), "--list", *args],
                              capture_output=True, text=True, timeout=120, cwd=REPO / "benchmarks")
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    table1 = listed("reruns.py", "--only", "table1-s1")
    methods = listed("methods_reruns.py", "--only", "ml1m-s1")
    assert len(table1) == 72 and len(methods) == 6 * 13
    base = [run for run in methods if "-base-s1-" in run]
    assert len(base) == 6 and set(base) <= set(table1)  # the same keys: one Base run serves both sweeps
    assert sum("-base-no-domain-field-s1-" in run for run in methods) == 6
