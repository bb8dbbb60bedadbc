"""Shared fixtures: the real datasets in ../shared/data and small generated files in official formats."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER") and hasattr(os, "sched_setaffinity"):
    # `make test` runs the suite on one worker process per core (pytest-xdist). Each worker keeps to a core of its
    # own, and so do the runs and sweeps its tests start (they size their threads and workers by the cores they
    # may use). Left to the machine's count, every worker ran one spinning OpenMP thread per core: the small
    # models here ran 10-100x slower.
    ALL_CORES = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {ALL_CORES[int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw")) % len(ALL_CORES)]})
    torch.set_num_threads(1)
else:
    ALL_CORES = None


@pytest.fixture
def every_core():
    """For a test whose sweep must run several worker processes at once: the machine's cores for the test's
    duration, not the one core of its pytest-xdist worker (a sweep never runs more workers than it has cores)."""
    if ALL_CORES is None:
        yield
        return
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, ALL_CORES)
    try:
        yield
    finally:
        os.sched_setaffinity(0, own)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MOE_MLORA_DATA_DIR") or REPO.parent / "shared" / "data")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Each test writes encoded caches to its own folder, never ~/.cache."""
    monkeypatch.setenv("MOE_MLORA_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    if not (SHARED_DATA / "ml-100k" / "u.data").is_file():
        pytest.skip(f"real MovieLens files not found in {SHARED_DATA}")
    return SHARED_DATA


def write_ml1m_ratings(path: Path, users: np.ndarray, movies: np.ndarray, n_rows: int, seed: int = 0) -> np.ndarray:
    """A ratings.dat in the official UserID::MovieID::Rating::Timestamp format; returns the ratings."""
    rng = np.random.default_rng(seed)
    pairs = set()
    rows = []
    while len(rows) < n_rows:
        user, movie = int(rng.choice(users)), int(rng.choice(movies))
        if (user, movie) in pairs:
            continue
        pairs.add((user, movie))
        rows.append((user, movie, int(rng.integers(1, 6)), 978300000 + len(rows)))
    path.write_text("".join(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in rows))
    return np.array([r for _, _, r, _ in rows])


@pytest.fixture
def ml1m_dir(tmp_path, real_data_dir) -> Path:
    """Real users.dat and movies.dat beside a generated ratings.dat (the real one is not available offline)."""
    partial = real_data_dir / "ml-1m-partial"
    if not (partial / "users.dat").is_file():
        pytest.skip("ml-1m-partial not available")
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    for name in ("users.dat", "movies.dat"):
        shutil.copy(partial / name, folder / name)
    users = np.array([int(line.split("::")[0]) for line in (folder / "users.dat").read_text(encoding="latin-1").splitlines()])
    movies = np.array([int(line.split("::")[0]) for line in (folder / "movies.dat").read_text(encoding="latin-1").splitlines()])
    write_ml1m_ratings(folder / "ratings.dat", users, movies, n_rows=20_000)
    return tmp_path

