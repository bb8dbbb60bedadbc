"""torchrun data-parallel training: 2 CPU processes (gloo) reach the model 1 process reaches."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from moe_mlora.cli import app
from serving.conftest import make_table

CONFIG = """
data: {{dataset: table, table_path: {table}, split_by: region, features: [user, item], label_column: clicked}}
model: {model}
model_config: {{dnn_dropout: 0.0, dnn_hidden: [32, 16]}}
approach: {{approach: {approach}, experts_per_domain: {k}}}
train: {{max_epochs: 2, patience: 10, batch_size: 256, learning_rate: 0.003, progress: false}}
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
# Base is covered by MoE-MLoRA's phase 1, which trains the Base model (test_moe_phase1_reproduces_base_training_bitwise).
@pytest.mark.parametrize("model, approach, k", [("dcn", "mlora", 1), ("deepfm", "moe-mlora", 2)])
def test_two_torchrun_processes_reach_the_single_process_model(tmp_path, model, approach, k):
    make_table(2000).to_csv(tmp_path / "t.csv", index=False)
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG.format(table=tmp_path / "t.csv", model=model, approach=approach, k=k))
    single = CliRunner().invoke(app, ["train", "--config", str(config), "--runs-dir", str(tmp_path / "one")])
    assert single.exit_code == 0, single.output
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "moe_mlora", "train", "--config", str(config), "--runs-dir", str(tmp_path / "two")],
                          capture_output=True, text=True, timeout=300, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote ") == 1  # rank 0 alone reports and writes
    (one,), (two,) = (list((tmp_path / name).iterdir()) for name in ("one", "two"))
    first, second = (json.loads((folder / "result.json").read_text()) for folder in (one, two))
    assert [p["best_epoch"] for p in first["phases"]] == [p["best_epoch"] for p in second["phases"]]
    assert abs(first["test"]["wauc"] - second["test"]["wauc"]) < 1e-6
    for name in ["model.safetensors"] + (["adapter.safetensors"] if approach != "base" else []):
        a, b = load_file(str(one / name)), load_file(str(two / name))
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5)  # float summation order only
