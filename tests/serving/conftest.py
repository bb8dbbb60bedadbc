"""A small table and runs trained on it, shared by the serving tests (training once per session)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def make_table(n_rows: int = 3000, seed: int = 0, domains=("north", "south", "west"), users: int = 250) -> pd.DataFrame:
    """Clicks that depend on the user, the item and the domain; ids as text, as a CSV delivers them."""
    rng = np.random.default_rng(seed)
    user, item = rng.integers(0, users, n_rows), rng.integers(0, 120, n_rows)
    domain = rng.integers(0, len(domains), n_rows)
    taste = rng.normal(size=users)[user] + rng.normal(size=120)[item] + np.array([0.5, -0.5, 0.0, 1.0][:len(domains)])[domain]
    label = (rng.random(n_rows) < 1 / (1 + np.exp(-taste))).astype(int)
    return pd.DataFrame({"user": [f"u{u}" for u in user], "item": [f"i{i}" for i in item],
                         "region": np.array(domains)[domain], "clicked": label})


def train_run(folder: Path, table: Path, approach: str, k: int = 1, min_count: int | None = None, model: str = "deepfm"):
    from moe_mlora.data import DatasetConfig
    from moe_mlora.experiments.run import RunConfig, execute_run
    from moe_mlora.training.approaches import ApproachConfig
    from moe_mlora.training.config import TrainConfig

    config = RunConfig(
        data=DatasetConfig("table", split_by="region", features=("user", "item"), table_path=str(table),
                           label_column="clicked", min_count=min_count),
        model=model, approach=ApproachConfig(approach, k),
        train=TrainConfig(max_epochs=2, batch_size=256, learning_rate=3e-3, progress=False),
    )
    record = execute_run(config, folder)
    return config.run_dir(folder), record, config


@pytest.fixture(scope="session")
def table_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("table") / "clicks.csv"
    make_table().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def moe_run(tmp_path_factory, table_csv):
    """A MoE-MLoRA (k = 2) DeepFM run on the table, with the default trained OOV rows (min count 2)."""
    return train_run(tmp_path_factory.mktemp("runs"), table_csv, "moe-mlora", k=2)
