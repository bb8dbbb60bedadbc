"""Sweeps on a tiny generated dataset: end to end through the CLI, failure recording, kill and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moe_mlora.cli import app
from moe_mlora.data import DatasetConfig
from moe_mlora.data.synthetic import SyntheticTaobaoConfig, generate_synthetic_taobao
from moe_mlora.experiments.run import RunConfig
from moe_mlora.experiments.sweep import run_sweep
from moe_mlora.models import ModelConfig
from moe_mlora.training.config import TrainConfig
from moe_mlora.training.approaches import ApproachConfig

TINY = SyntheticTaobaoConfig(n_themes=4, n_users=400, n_items=300, pool_size=80, themes_per_user=2.0, seed=5)


@pytest.fixture
def tiny_taobao(monkeypatch, tmp_path):
    """A small SYNTHETIC Taobao log where the pipeline looks for it (the cache folder)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("MOE_MLORA_CACHE_DIR", str(cache))
    generate_synthetic_taobao(cache / "taobao-synthetic", TINY)
    return cache


def reproduce_args(results: Path, *extra: str) -> list[str]:
    return ["reproduce", "table1", "--datasets", "taobao-synthetic:3", "--models", "wdl,deepfm", "--seeds", "2",
            "--max-epochs", "2", "--results-dir", str(results), *extra]


def test_tiny_table1_grid_runs_end_to_end_and_reports(tiny_taobao, tmp_path):
    results = tmp_path / "results"
    outcome = CliRunner().invoke(app, reproduce_args(results, "--workers", "2"))
    assert outcome.exit_code == 0, outcome.output
    assert len(list(results.glob("*/result.json"))) == 12  # 3 approaches x 2 models x 2 seeds
    assert "| taobao-synthetic-theme-3 (SYNTHETIC) | Base |" in outcome.output
    report = (results / "report.md").read_text()
    assert "Table 1" in report and "Avg(Δ MoE-MLoRA − MLoRA)" in report and "p (Holm)" in report
    assert "vs paper" not in report  # a 3-theme split has no row in the paper to sit beside
    # Reports can be rebuilt from the records alone.
    again = CliRunner().invoke(app, ["report", str(results), "--out", str(tmp_path / "copy")])
    assert again.exit_code == 0 and (tmp_path / "copy" / "report.md").read_text() == report
    # MoE-MLoRA reused its Base run's backbone for phase 1.
    moe = [json.loads(p.read_text()) for p in results.glob("*moe-mlora*/result.json")]
    assert all("reused the Base run's backbone" in r["phases"][0]["note"] for r in moe)


def test_experts_sweep_draws_figure2(tiny_taobao, tmp_path):
    results = tmp_path / "experts"
    outcome = CliRunner().invoke(app, [
        "reproduce", "experts", "--split", "taobao-synthetic:3", "--models", "wdl", "--experts-per-domain", "1,2",
        "--seeds", "1", "--max-epochs", "2", "--results-dir", str(results), "--workers", "1"])
    assert outcome.exit_code == 0, outcome.output
    assert (results / "figure2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Figure 2" in (results / "report.md").read_text()


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tiny_taobao, tmp_path):
    good = RunConfig(DatasetConfig("taobao-synthetic", n_themes=3), "wdl", ModelConfig(dnn_hidden=(16, 8)),
                     ApproachConfig("base"), TrainConfig(max_epochs=1, progress=False))
    bad = RunConfig(DatasetConfig("table", "scenario", table_path=str(tmp_path / "missing.csv")), "wdl",
                    ModelConfig(), ApproachConfig("base"), TrainConfig(max_epochs=1, progress=False))
    summary = run_sweep([bad, good], tmp_path / "r", workers=1)
    assert summary.finished == 1 and len(summary.failed) == 1 and "missing.csv: file not found" in summary.failed[0]
    record = json.loads((bad.run_dir(tmp_path / "r") / "result.json").read_text())
    assert record["status"] == "failed" and "DataError" in record["error"]
    # A rerun skips both (the failure is recorded); --retry-failed would try it again.
    assert run_sweep([bad, good], tmp_path / "r", workers=1).skipped == 2


def test_killed_sweep_resumes_without_losing_recorded_runs(tiny_taobao, tmp_path):
    results = tmp_path / "results"
    command = [sys.executable, "-m", "moe_mlora.cli", *reproduce_args(results, "--workers", "1")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=os.environ.copy(), start_new_session=True)
    deadline = time.time() + 240
    while len(list(results.glob("*/result.json"))) < 3 and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the whole process tree, mid-run
    process.wait()
    recorded = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in results.glob("*/result.json")}
    assert 3 <= len(recorded) < 12
    assert all(json.loads(content)["status"] == "ok" for content, _ in recorded.values())

    outcome = CliRunner().invoke(app, reproduce_args(results, "--workers", "1"))
    assert outcome.exit_code == 0, outcome.output
    assert f"{len(recorded)} of 12 runs already recorded" in outcome.output
    assert len(list(results.glob("*/result.json"))) == 12
    for path, (content, mtime) in recorded.items():
        assert path.read_bytes() == content and path.stat().st_mtime_ns == mtime
    assert not list(results.glob("**/*.tmp"))
