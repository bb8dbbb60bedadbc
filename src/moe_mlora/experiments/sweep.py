"""Run many configs: skip those already recorded, record each as soon as it ends, survive failures.

Processes come from the standard library's ProcessPoolExecutor on one machine, or from Ray on a cluster
(`pip install 'moe-mlora[ray]'`, then --backend ray). Each finished run is its own result.json, written
atomically, and a run in flight saves its training state as it goes (moe_mlora.training.resume), so killing
a sweep at any moment loses at most the last few seconds of each run in flight.

Stopping: at most `workers` runs are in flight. Ctrl-C or SIGTERM ends the sweep within seconds: its
workers are killed and it says how many runs are recorded (a rerun resumes). Workers also end on their
own when the sweep's process dies (even by SIGKILL): each watches its parent. One sweep at a time may
write to a results folder (a lock file there; a second sweep refuses at once).

Progress: a live bar on a terminal; written to a file (a sweep in the background), one plain line per
finished run with the count, the elapsed time and an estimate of the time left.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import torch
from filelock import FileLock, Timeout
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from tqdm import tqdm

from moe_mlora.data import prepare_dataset
from moe_mlora.errors import ConfigError, MoeMloraError
from moe_mlora.files import probe_writable
from moe_mlora.run_config import RunConfig
from moe_mlora.experiments.records import RunRecord
from moe_mlora.experiments.run import base_run_of, execute_run
from moe_mlora.training.config import available_cores
from moe_mlora.training.resume import RESUME_FOLDER

BACKENDS = ("process", "ray")
LOCK_FILE = ".sweep.lock"


class SweepInterrupted(MoeMloraError):
    """The sweep was stopped (Ctrl-C or SIGTERM); recorded runs stay, a rerun resumes."""


@dataclass
class SweepSummary:
    total: int
    skipped: int = 0
    finished: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def pending_configs(configs: list[RunConfig], results_dir: Path, retry_failed: bool = False) -> list[RunConfig]:
    """The configs without a record of the current schema (and, with retry_failed, those recorded as failed)."""
    unique = list({config.key(): config for config in configs}.values())
    pending = []
    for config in unique:
        record = RunRecord.read(config.run_dir(results_dir))
        if record is None or not record.current or (retry_failed and not record.ok):
            pending.append(config)
    return pending


def run_one(config_data: dict, results_dir: str, data_dir: str | None) -> tuple[str, str, str]:
    """Worker entry: train one config, or record why it failed. Returns (label, status, error)."""
    config = RunConfig.from_dict(config_data)
    try:
        execute_run(config, Path(results_dir), data_dir=Path(data_dir) if data_dir else None)
        return config.label, "ok", ""
    except Exception as exc:  # noqa: BLE001 - a failed run is recorded and the sweep goes on
        error = f"{type(exc).__name__}: {exc}"
        try:
            RunRecord("failed", config, error=error, traceback=traceback.format_exc(limit=8)).write(
                config.run_dir(Path(results_dir)))
        except OSError as write_error:  # e.g. the disk is full: the sweep goes on and says the record is missing
            error += f" (its failure record could not be written either: {write_error.strerror or write_error})"
        return config.label, "failed", error


def _init_worker(threads: int, parent: int, pids) -> None:
    torch.set_num_threads(threads)
    # tqdm would make a multiprocessing lock (a named semaphore) in each worker; a worker killed when the sweep
    # stops never releases it, and the resource tracker then warns of a leak after the clean one-line message.
    tqdm.set_lock(threading.RLock())
    pids.put(os.getpid())
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A worker whose sweep died (re-parented to another process) stops at once, whatever it was doing."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(3)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_once(signum, frame) -> None:
    """The first SIGTERM or SIGINT stops the sweep (as Ctrl-C does); any further one is ignored until the stop
    is done, so that killing the workers and logging the stopped sweep are not themselves interrupted.
    `timeout` and service managers signal the sweep and then its whole process group: it gets two."""
    for stop in STOP_SIGNALS:
        signal.signal(stop, signal.SIG_IGN)
    raise KeyboardInterrupt


def _catch_stop_signals() -> dict:
    """Install _stop_once for SIGTERM, and for SIGINT unless it is ignored (a script's `... &` ignores SIGINT
    in what it starts, and that choice is kept); returns the handlers to put back."""
    previous = {stop: signal.getsignal(stop) for stop in STOP_SIGNALS}
    for stop, handler in previous.items():
        if handler is not signal.SIG_IGN or stop == signal.SIGTERM:
            signal.signal(stop, _stop_once)
    return previous


def run_sweep(
    configs: list[RunConfig],
    results_dir: Path,
    *,
    workers: int | None = None,
    backend: str = "process",
    retry_failed: bool = False,
    data_dir: Path | None = None,
    console: Console | None = None,
) -> SweepSummary:
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}")
    console = console or Console(stderr=True)
    probe_writable(results_dir)
    lock = FileLock(results_dir / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"another sweep is writing to {results_dir} (it holds {results_dir / LOCK_FILE}); "
                          "wait for it to end or give another --results-dir") from None
    try:
        return _run_locked(configs, results_dir, workers, backend, retry_failed, data_dir, console)
    finally:
        lock.release()


def _run_locked(configs, results_dir, workers, backend, retry_failed, data_dir, console) -> SweepSummary:
    for stale in [*results_dir.glob("*/.*.tmp"), *results_dir.glob(f"*/{RESUME_FOLDER}/.*.tmp")]:
        stale.unlink(missing_ok=True)  # left by a worker killed mid-write; we hold the only lock
    todo = pending_configs(configs, results_dir, retry_failed)
    summary = SweepSummary(total=len({c.key() for c in configs}))
    summary.skipped = summary.total - len(todo)
    if summary.skipped:
        console.print(f"{summary.skipped} of {summary.total} runs already recorded in {results_dir}: skipped")
    if not todo:
        return summary
    resuming = sum((config.run_dir(results_dir) / RESUME_FOLDER).is_dir() for config in todo)
    if resuming:
        console.print(f"{resuming} run(s) stopped mid-way saved their training state: each resumes from it (unless "
                      "its code or settings changed since)")
    for data in {c.data for c in todo}:  # encode each dataset once, before workers race to do it
        try:
            prepare_dataset(data, data_dir)
        except MoeMloraError as exc:
            console.print(f"[red]{escape(f'{data.dataset}:{data.split_by}')}[/]: {escape(str(exc))} (its runs will be "
                          "recorded as failed)", markup=True)
    cores = available_cores()
    threads = max(c.train.threads for c in todo)  # each run sets its own (TrainConfig.threads, part of its key)
    workers = max(1, min(workers or cores // threads, cores))
    workers = min(workers, len(todo))
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("", total=len(todo))

        def describe(running: int) -> None:
            progress.update(task, description=f"sweep: {summary.finished} done, {running} running, {len(summary.failed)} failed")

        describe(0)
        runner = _ray_results if backend == "ray" else _process_results
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = _catch_stop_signals() if in_main_thread else {}
        try:
            for label, status, error, running in runner(todo, results_dir, data_dir, workers, threads):
                if status == "ok":
                    summary.finished += 1
                else:
                    summary.failed.append(f"{label}: {error}")
                    console.print(f"[red]failed[/] {escape(label)}: {escape(error)}", highlight=False, markup=True)
                progress.advance(task)
                describe(running)
                if not console.is_terminal:  # a log file gets no live bar: a line per run instead
                    console.print(progress_line(summary, len(todo), label, status, time.perf_counter() - started),
                                  highlight=False, markup=False)
        except KeyboardInterrupt:
            recorded = summary.skipped + summary.finished + len(summary.failed)
            summary.seconds = time.perf_counter() - started
            _log_sweep(results_dir, summary, len(todo), workers, backend, interrupted=True)
            raise SweepInterrupted(f"{recorded} of {summary.total} runs are recorded in {results_dir}; "
                                   "run the same command again to resume") from None
        finally:
            for stop, handler in previous.items():
                if handler is not None:  # None: a handler not installed from Python, which Python cannot put back
                    signal.signal(stop, handler)
    summary.seconds = time.perf_counter() - started
    _log_sweep(results_dir, summary, len(todo), workers, backend)
    return summary


def progress_line(summary: SweepSummary, runs: int, label: str, status: str, elapsed: float) -> str:
    """`[done/runs] status label · elapsed, ~left` for a sweep whose output goes to a file. The time left
    assumes the remaining runs take as long as the finished ones did on average."""
    done = summary.finished + len(summary.failed)
    left = elapsed / done * (runs - done)
    return f"[{done}/{runs}] {status} {label} · {_clock(elapsed)} elapsed, ~{_clock(left)} left"


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def _log_sweep(results_dir: Path, summary: SweepSummary, runs: int, workers: int, backend: str,
               interrupted: bool = False) -> None:
    """One line per sweep (also a stopped one) in sweeps.jsonl: the report sums their wall time. A line that
    cannot be written (a full disk) is left out: the runs' own records are what counts."""
    try:
        with (results_dir / "sweeps.jsonl").open("a") as log:
            log.write(json.dumps({"ended": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": summary.seconds,
                                  "runs": runs, "finished": summary.finished, "failed": len(summary.failed),
                                  "workers": workers, "backend": backend, "interrupted": interrupted}) + "\n")
    except OSError:
        pass


class RunQueue:
    """The grid's runs in their order, except that a MoE-MLoRA run waits until the Base run whose backbone it
    reuses for phase 1 (moe_mlora.experiments.run.base_run_of) is neither waiting nor running: phase 1 is then
    reused whenever the grid holds that Base run, however the workers' timing falls."""

    def __init__(self, configs: list[RunConfig]) -> None:
        self.waiting = list(configs)
        self.unfinished = {config.key() for config in configs}

    def take(self) -> RunConfig | None:
        """The first waiting run that may start now (None: none may, or none is left)."""
        for index, config in enumerate(self.waiting):
            base = base_run_of(config)
            if base is None or base.key() not in self.unfinished:
                return self.waiting.pop(index)
        return None

    def done(self, config: RunConfig) -> None:
        self.unfinished.discard(config.key())


def _process_results(todo, results_dir, data_dir, workers, threads) -> Iterator[tuple[str, str, str, int]]:
    """At most `workers` runs in flight; on any exit but the normal one, the workers are killed."""
    context = get_context("spawn")  # no forked copies of torch's thread pools
    pids = context.SimpleQueue()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(threads, os.getpid(), pids))
    queue, futures, finished = RunQueue(todo), {}, False

    def fill() -> None:
        while len(futures) < workers and (config := queue.take()) is not None:
            futures[pool.submit(run_one, config.to_dict(), str(results_dir), str(data_dir) if data_dir else None)] = config

    try:
        fill()
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                queue.done(futures.pop(future))
            fill()
            for future in done:
                yield (*future.result(), len(futures))
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            _kill_workers(pids)
            pool.shutdown(wait=False, cancel_futures=True)


def _kill_workers(pids) -> None:
    while not pids.empty():
        try:
            os.kill(pids.get(), signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass


def _ray_results(todo, results_dir, data_dir, workers, threads) -> Iterator[tuple[str, str, str, int]]:
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray backend needs Ray: pip install 'moe-mlora[ray]'") from None
    ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True)
    remote = ray.remote(num_cpus=threads)(run_one)
    queue, running = RunQueue(todo), {}

    def submit_ready() -> None:
        while (config := queue.take()) is not None:
            running[remote.remote(config.to_dict(), str(results_dir), str(data_dir) if data_dir else None)] = config

    submit_ready()
    while running:
        done, _ = ray.wait(list(running), num_returns=1)
        queue.done(running.pop(done[0]))
        submit_ready()
        yield (*ray.get(done[0]), len(running))
