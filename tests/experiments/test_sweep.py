"""Sweeps on a tiny generated dataset: end to end through the CLI, failure recording, kill and resume."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
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


def stop_args(results: Path) -> list[str]:
    """The stop tests' grid: 6 runs (wdl, 3 approaches, 2 seeds) on 2 workers. At most 3 runs start before
    held_sweep.py's 2 free records exist, so at least 3 are held whenever the test stops the sweep."""
    return ["reproduce", "table1", "--datasets", "taobao-synthetic:3", "--models", "wdl", "--seeds", "2",
            "--max-epochs", "2", "--results-dir", str(results), "--workers", "2"]


def test_tiny_table1_grid_runs_end_to_end_and_reports(tiny_taobao, tmp_path, every_core):
    results = tmp_path / "results"
    outcome = CliRunner().invoke(app, reproduce_args(results, "--workers", "2"))
    assert outcome.exit_code == 0, outcome.output
    assert len(list(results.glob("*/result.json"))) == 12  # 3 approaches x 2 models x 2 seeds
    assert "| taobao-synthetic-theme-3 (SYNTHETIC) | Base |" in outcome.output
    # Output to a file (not a terminal) gets one progress line per finished run, counting up to the grid's size.
    counts = [line.split("]")[0] for line in outcome.output.splitlines() if line.startswith("[") and " ok " in line]
    assert counts == [f"[{done}/12" for done in range(1, 13)], outcome.output
    assert "elapsed, ~0:00:00 left" in outcome.output
    report = (results / "report.md").read_text()
    assert "Table 1" in report and "Avg(Δ MoE-MLoRA − MLoRA)" in report and "p (Holm)" in report
    assert "vs paper" not in report  # a 3-theme split has no row in the paper to sit beside
    # Reports can be rebuilt from the records alone (titled by the folder they are written to).
    again = CliRunner().invoke(app, ["report", str(results), "--out", str(tmp_path / "copy")])
    title, _, rest = (tmp_path / "copy" / "report.md").read_text().partition("\n")
    assert again.exit_code == 0 and title == "# moe-mlora results (copy)" and rest == report.partition("\n")[2]
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


def children_of(pid: int) -> set[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


STOP_BOUND_S = 60  # how long a stopped sweep and its workers may take to end before the test calls it a hang


def start_sweep(results: Path) -> subprocess.Popen:
    """A sweep whose runs after the first two hold until they are killed (held_sweep.py): it is still running
    whenever the test stops it, on any machine."""
    command = [sys.executable, str(Path(__file__).with_name("held_sweep.py")), *stop_args(results)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy(),
                            start_new_session=True, text=True)


def wait_for_records(results: Path, count: int, process: subprocess.Popen) -> set[int]:
    """Wait until `count` runs are recorded; returns the sweep's worker processes."""
    deadline = time.time() + 240
    while len(list(results.glob("*/result.json"))) < count and time.time() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert process.poll() is None, "the sweep ended before it could be stopped"
    workers = children_of(process.pid)
    assert len(workers) >= 2
    return workers


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find worker processes")
# SIGTERM is turned into the KeyboardInterrupt that SIGINT raises, so from there on both stop the same way: the
# resume is checked after SIGTERM and SIGKILL (the abrupt end), and SIGINT checks the ending alone.
@pytest.mark.parametrize("how, resume", [(signal.SIGINT, False), (signal.SIGTERM, True), (signal.SIGKILL, True)],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_stopped_sweep_ends_its_workers_and_resumes_to_the_same_numbers(tiny_taobao, tmp_path, how, resume,
                                                                          every_core):
    results = tmp_path / "stopped"
    process = start_sweep(results)
    try:
        workers = wait_for_records(results, 2, process)
        os.kill(process.pid, how)  # the sweep's own process only, not its group
        # A stopped sweep ends on its own: its held runs would never finish, so a sweep that ignored the signal
        # would still be running here. The bound is generous (a loaded 2-core machine needed more than 10 s);
        # it separates ending from hanging, not fast from slow.
        process.wait(timeout=STOP_BOUND_S)
        if how != signal.SIGKILL:
            output = process.stdout.read()
            assert process.returncode == 130 and "run the same command again to resume" in output, output
            assert "Traceback" not in output and "leaked" not in output  # no resource_tracker warning after it
        deadline = time.time() + STOP_BOUND_S
        while any(alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in workers), "a worker outlived its sweep"
    finally:  # a failed check must not leave a held sweep spinning for the rest of the session
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    recorded = {p: p.read_bytes() for p in results.glob("*/result.json")}
    assert all(json.loads(content)["status"] == "ok" for content in recorded.values())
    if not resume:
        return

    resumed = CliRunner().invoke(app, stop_args(results))
    assert resumed.exit_code == 0 and f"{len(recorded)} of 6 runs already recorded" in resumed.output
    assert all(path.read_bytes() == content for path, content in recorded.items())
    assert not list(results.glob("**/*.tmp"))
    assert recorded_test_metrics(results) == uninterrupted_test_metrics(tmp_path / "straight")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find worker processes")
def test_a_sweep_stopped_as_timeout_stops_it_ends_cleanly_once(tiny_taobao, tmp_path, every_core):
    # `timeout -s TERM` (and a service manager) signals the sweep and then its whole process group: the sweep
    # gets SIGTERM twice and its workers once. The second signal must not break the first one's stop (it once
    # ended in "RuntimeError: release unlocked lock" inside concurrent.futures, with no stopped-sweep line logged).
    results = tmp_path / "twice"
    process = start_sweep(results)
    try:
        workers = wait_for_records(results, 2, process)
        os.kill(process.pid, signal.SIGTERM)
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_BOUND_S)
        output = process.stdout.read()
        # A second signal that lands after the stop is done (records safe, workers ended, the sweep logged) is
        # the plain SIGTERM it is: the process ends by it. One that lands during the stop is ignored.
        assert process.returncode in (130, -signal.SIGTERM), output
        assert process.returncode == -signal.SIGTERM or "run the same command again to resume" in output, output
        assert "Traceback" not in output and "Error" not in output, output
        deadline = time.time() + STOP_BOUND_S
        while any(alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in workers), "a worker outlived its sweep"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    logged = [json.loads(line) for line in (results / "sweeps.jsonl").read_text().splitlines()]
    assert logged[-1]["interrupted"] is True  # the stopped sweep logged itself


_UNINTERRUPTED: dict = {}


def recorded_test_metrics(folder: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text())["test"] for p in folder.glob("*/result.json")}


def uninterrupted_test_metrics(folder: Path) -> dict:
    """The same grid swept without interruption (once per test session: the tiny data is seeded)."""
    if not _UNINTERRUPTED:
        assert CliRunner().invoke(app, stop_args(folder)).exit_code == 0
        _UNINTERRUPTED.update(recorded_test_metrics(folder))
    assert len(_UNINTERRUPTED) == 6
    return _UNINTERRUPTED


def test_a_second_sweep_on_the_same_folder_refuses_at_once(tiny_taobao, tmp_path):
    from filelock import FileLock

    results = tmp_path / "shared"
    results.mkdir()
    with FileLock(results / ".sweep.lock"):
        started = time.time()
        outcome = CliRunner().invoke(app, reproduce_args(results))
    assert time.time() - started < 5
    assert outcome.exit_code == 2 and "another sweep is writing to" in outcome.output
    assert len(outcome.output.strip().splitlines()) == 1 and not list(results.glob("*/result.json"))


@pytest.mark.skipif(__import__("importlib").util.find_spec("ray") is None,
                    reason="the ray extra is not installed (pip install 'moe-mlora[ray]')")
def test_the_ray_backend_on_a_local_ray_instance_records_what_the_process_backend_does(tiny_taobao, tmp_path, monkeypatch,
                                                                                    every_core):
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    configs = [RunConfig(DatasetConfig("taobao-synthetic", n_themes=3), "wdl", ModelConfig(dnn_hidden=(16,)),
                         ApproachConfig(approach), TrainConfig(max_epochs=2, progress=False, seed=1))
               for approach in ("base", "mlora")]
    try:
        on_ray = run_sweep(configs, tmp_path / "ray", backend="ray", workers=2)
    finally:
        ray.shutdown()
    on_processes = run_sweep(configs, tmp_path / "processes", backend="process", workers=2)
    assert on_ray.finished == on_processes.finished == 2 and not on_ray.failed
    for config in configs:
        a, b = (json.loads((config.run_dir(tmp_path / name) / "result.json").read_text()) for name in ("ray", "processes"))
        assert a["status"] == "ok" and a["test"]["wauc"] == b["test"]["wauc"]


def test_a_ninth_registered_backbone_goes_through_reproduce_and_report(tiny_taobao, tmp_path):
    script = str(Path(__file__).with_name("ninth_backbone.py"))
    results = tmp_path / "ninth"
    args = ["reproduce", "table1", "--datasets", "taobao-synthetic:3", "--models", "ninth", "--seeds", "2",
            "--max-epochs", "1", "--results-dir", str(results), "--workers", "2"]
    swept = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env=os.environ.copy())
    assert swept.returncode == 0 and "Traceback" not in swept.stdout + swept.stderr, swept.stdout + swept.stderr
    assert len(list(results.glob("*ninth*/result.json"))) == 6
    reported = subprocess.run([sys.executable, script, "report", str(results), "--out", str(tmp_path / "report")],
                              capture_output=True, text=True, env=os.environ.copy())
    assert reported.returncode == 0, reported.stdout + reported.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| Dataset | Arm | ninth | Avg |" in text


def test_the_controlled_grid_maps_each_methods_gain_against_the_oracle_gap(tmp_path, monkeypatch):
    from dataclasses import replace

    from moe_mlora.data.controlled import ControlledConfig
    from moe_mlora.experiments import controlled

    small = ControlledConfig(n_domains=2, users_per_domain=60, items_per_domain=40, rows=3000, heterogeneity=0.0)
    monkeypatch.setattr(controlled, "SETTINGS", {"flat": small, "apart": replace(small, heterogeneity=1.0)})
    monkeypatch.setattr("moe_mlora.cli.reproduce.SETTINGS", controlled.SETTINGS)
    results = tmp_path / "controlled"
    outcome = CliRunner().invoke(app, ["reproduce", "controlled", "--models", "wdl", "--seeds", "2", "--max-epochs", "2",
                                       "--results-dir", str(results), "--workers", "1", "--methods", "star"])
    assert outcome.exit_code == 0, outcome.output
    frame = pd.read_csv(results / "controlled.csv")
    assert set(frame.setting) == {"flat", "apart"}
    assert set(frame.method) == {"MLoRA", "MoE-MLoRA", "MoE-MLoRA own-experts", "STAR"}  # every arm, plugins too
    gaps = frame.groupby("setting").oracle_gap.first()
    assert gaps["flat"] == 0 and gaps["apart"] > 1  # points of WAUC
    assert (frame.seeds == 2).all() and (results / "controlled.png").is_file()
    report = (results / "report.md").read_text()
    assert "table-flat-domain" in report and "table-apart-domain" in report  # two tables, never pooled
    trainings = {(train["batch_size"], train["min_epochs"])
                 for train in (json.loads(path.read_text())["config"]["train"] for path in results.glob("*/result.json"))}
    assert trainings == {(256, 2)}  # the map's training defaults (not the paper's 1,024; a floor of 10, here
    # lowered to the --max-epochs cap of 2, which it may not exceed) unless given

    # Shipped without its tables (records and truth.json files only), the map is rebuilt the same.
    import shutil

    from moe_mlora.experiments.report import write_report

    shipped = tmp_path / "shipped"
    for result in results.glob("*/result.json"):
        (shipped / result.parent.name).mkdir(parents=True)
        shutil.copyfile(result, shipped / result.parent.name / "result.json")
    for truth in (results / "tables").glob("*/truth.json"):
        (shipped / "tables" / truth.parent.name).mkdir(parents=True)
        shutil.copyfile(truth, shipped / "tables" / truth.parent.name / "truth.json")
    shutil.rmtree(results / "tables")
    write_report(shipped)
    pd.testing.assert_frame_equal(pd.read_csv(shipped / "controlled.csv"), frame)


def test_a_moe_run_waits_for_the_base_run_it_reuses_but_not_for_anything_else():
    from moe_mlora.data import DatasetConfig
    from moe_mlora.run_config import RunConfig
    from moe_mlora.experiments.sweep import RunQueue
    from moe_mlora.training.approaches import ApproachConfig

    data = DatasetConfig("taobao-synthetic", n_themes=3)
    base, mlora, moe = (RunConfig(data, "wdl", approach=ApproachConfig(a)) for a in ("base", "mlora", "moe-mlora"))
    authors = RunConfig(data, "wdl", approach=ApproachConfig("moe-mlora", schedule="authors-code"))  # trains its own
    other_moe = RunConfig(data, "dcn", approach=ApproachConfig("moe-mlora"))  # its Base is not in this grid
    queue = RunQueue([base, moe, other_moe, mlora, authors])
    started = [queue.take() for _ in range(4)]
    assert started == [base, other_moe, mlora, authors] and queue.take() is None  # moe waits while base runs
    queue.done(base)
    assert queue.take() == moe and queue.take() is None


def test_a_killed_run_resumes_from_its_saved_state_and_leaves_none_once_recorded(tiny_taobao, tmp_path, monkeypatch):
    from moe_mlora.experiments.run import execute_run
    from moe_mlora.training import resume
    from moe_mlora.training.resume import RESUME_FOLDER

    monkeypatch.setattr(resume, "SAVE_EVERY_S", 0.0)  # every epoch (its epochs are milliseconds)

    run = RunConfig(DatasetConfig("taobao-synthetic", n_themes=3), "wdl", ModelConfig(dnn_hidden=(16, 8)),
                    ApproachConfig("moe-mlora"), TrainConfig(max_epochs=3, progress=False, seed=2))
    straight = execute_run(run, tmp_path / "straight", reuse_base=False)
    epochs = []

    def killed_after_four(label, record):
        epochs.append(label)
        if len(epochs) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute_run(run, tmp_path / "killed", on_epoch=killed_after_four, reuse_base=False)
    folder = run.run_dir(tmp_path / "killed")
    assert (folder / RESUME_FOLDER).is_dir() and not (folder / "result.json").exists()
    resumed = execute_run(run, tmp_path / "killed", on_epoch=lambda label, record: epochs.append(label),
                          reuse_base=False)
    assert len(epochs) == 4 + sum(len(p.history) for p in straight.phases) - 4
    assert resumed.test.to_dict() == straight.test.to_dict()
    assert [p.best_epochs for p in resumed.phases] == [p.best_epochs for p in straight.phases]
    assert not (folder / RESUME_FOLDER).exists() and (folder / "result.json").is_file()
    assert any(note.startswith("resumed from the saved training state") for note in resumed.notes)
    assert not any("resumed" in note for note in straight.notes)


def test_a_sweep_says_how_many_of_its_runs_resume_from_saved_state(tiny_taobao, tmp_path):
    from io import StringIO

    from rich.console import Console

    from moe_mlora.training.resume import RESUME_FOLDER, RunCheckpoint

    runs = [RunConfig(DatasetConfig("taobao-synthetic", n_themes=3), "wdl", ModelConfig(dnn_hidden=(16,)),
                      ApproachConfig(approach), TrainConfig(max_epochs=1, progress=False)) for approach in ("base", "mlora")]
    RunCheckpoint(runs[1].run_dir(tmp_path) / RESUME_FOLDER, {"left by": "a stopped sweep"})  # saved state of another attempt
    output = StringIO()
    summary = run_sweep(runs, tmp_path, workers=1, console=Console(file=output, width=200))
    assert summary.finished == 2 and "1 run(s) stopped mid-way saved their training state" in output.getvalue()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 400 kB filesystem (tmpfs): a sweep's weights and saved state fill it. Needs mount rights (root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root): the full-disk sweep is not checked")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_sweep_on_a_full_disk_records_what_it_can_and_ends_with_its_own_message(tiny_taobao, tiny_disk):
    results = tiny_disk / "results"
    outcome = CliRunner().invoke(app, ["reproduce", "table1", "--datasets", "taobao-synthetic:3", "--models", "wdl",
                                       "--seeds", "1", "--max-epochs", "1", "--results-dir", str(results)])
    assert outcome.exit_code == 1, outcome.output
    assert "Traceback" not in outcome.output and not isinstance(outcome.exception, OSError), outcome.output
    assert "sweep: 0 finished, 0 already recorded, 3 failed" in outcome.output
    for line in (line for line in outcome.output.splitlines() if line.startswith("failed ")):
        assert "No space left on device" in line or "could not be written" in line, line
