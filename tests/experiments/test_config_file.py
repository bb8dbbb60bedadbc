"""Runs from YAML/JSON configs (a result.json among them), per-epoch CSVs and TensorBoard curves."""

from __future__ import annotations

import csv
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from data.test_feature_types import table
from moe_mlora.cli import app
from moe_mlora.run_config import RunConfig, load_config_file
from moe_mlora.errors import ConfigError


@pytest.fixture
def setup(tmp_path):
    table(600).to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "run.yaml").write_text(f"""
data:
  dataset: table
  table_path: {tmp_path / 't.csv'}
  split_by: region
  features: [user, item]
  numeric: [age]
  multi_valued: [genres]
  label_column: click
  split: time:ts
model: nfm
model_config:
  embedding_dim: 4
  dnn_hidden: [16, 8]
approach:
  approach: moe-mlora
train:
  max_epochs: 2
  seed: 3
  progress: false
""")
    return tmp_path


def train(*args):
    return CliRunner().invoke(app, ["train", *map(str, args)])


def only_run(folder):
    (run,) = [p for p in folder.iterdir() if p.is_dir()]
    return run


def test_a_yaml_config_trains_and_its_result_json_reruns_the_same_run_exactly(setup):
    first = train("--config", setup / "run.yaml", "--runs-dir", setup / "a")
    assert first.exit_code == 0, first.output
    run = only_run(setup / "a")
    record = json.loads((run / "result.json").read_text())
    assert record["config"]["model"] == "nfm" and record["config"]["model_config"]["dnn_hidden"] == [16, 8]
    assert record["config"]["data"]["numeric"] == ["age"] and record["config"]["data"]["split"] == "time:ts"
    again = train("--config", run / "result.json", "--runs-dir", setup / "b")
    assert again.exit_code == 0, again.output
    rerun = json.loads((only_run(setup / "b") / "result.json").read_text())
    assert rerun["key"] == record["key"] and rerun["test"]["wauc"] == record["test"]["wauc"]


def test_options_on_the_command_line_override_the_config_file(setup):
    result = train("--config", setup / "run.yaml", "--runs-dir", setup / "c", "--seed", "11", "--model", "wdl")
    assert result.exit_code == 0, result.output
    config = json.loads((only_run(setup / "c") / "result.json").read_text())["config"]
    assert config["train"]["seed"] == 11 and config["model"] == "wdl" and config["train"]["max_epochs"] == 2


def test_every_run_writes_a_per_epoch_csv_matching_its_history(setup):
    assert train("--config", setup / "run.yaml", "--runs-dir", setup / "d").exit_code == 0
    run = only_run(setup / "d")
    rows = list(csv.DictReader((run / "epochs.csv").open()))
    record = json.loads((run / "result.json").read_text())
    assert len(rows) == sum(len(phase["history"]) for phase in record["phases"])
    assert {row["phase"] for row in rows} == {"phase1-backbone", "phase2-experts", "phase3-gate"}
    assert all(np.isfinite(float(row["train_loss"])) for row in rows)


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                    reason="the tensorboard extra is not installed (pip install 'moe-mlora[tensorboard]')")
def test_log_dir_writes_tensorboard_events_per_phase(setup):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert train("--config", setup / "run.yaml", "--runs-dir", setup / "e", "--log-dir", setup / "tb").exit_code == 0
    (folder,) = (setup / "tb").iterdir()
    events = EventAccumulator(str(folder))
    events.Reload()
    assert {"phase1-backbone/train_loss", "phase3-gate/valid_score"} <= set(events.Tags()["scalars"])


@pytest.mark.parametrize("content, message", [
    ("train:\n  learnin_rate: 0.1\n", "unknown key 'train.learnin_rate'"),
    ("trainer:\n  seed: 1\n", "unknown key 'trainer'"),
    ("train: [1, 2]\n", "'train' must be a mapping"),
    ("data: {dataset: table\n", "line 2: not valid YAML"),
    ("- just\n- a list\n", "a config is a mapping of sections"),
    ("train:\n  batch_size: 2.5\n", "'train.batch_size' must be a whole number, got 2.5"),
    ("train:\n  max_epochs: true\n", "'train.max_epochs' must be a whole number, got True"),
    ("train:\n  learning_rate: '0.01'\n", "'train.learning_rate' must be a number, got '0.01'"),
    ("data:\n  features: user_id\n", "'data.features' must be a list"),
    ("model: 3\n", "'model' must be a backbone name"),
    ("model: ../../escape/deepfm\n", "unknown model '../../escape/deepfm'"),
])
def test_a_bad_config_file_is_one_line_naming_the_file_and_key(setup, content, message):
    path = setup / "bad.yaml"
    path.write_text(content)
    result = train("--config", path, "--runs-dir", setup / "never")
    assert result.exit_code == 2 and message in result.output, result.output
    assert "bad.yaml" in result.output or "unknown model" in message
    assert len(result.output.strip().splitlines()) == 1 and not (setup / "never").exists()


def test_json_configs_and_partial_configs_default_the_rest(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": "dcn", "train": {"batch_size": 64}}))
    config = RunConfig.from_partial(load_config_file(path))
    assert config.model == "dcn" and config.train.batch_size == 64 and config.data.dataset == "movielens-100k"
    with pytest.raises(ConfigError, match="unknown key 'model_config.depth'"):
        RunConfig.from_partial({"model_config": {"depth": 3}})


def test_reproduce_takes_the_users_table_and_model_overrides_from_a_config(setup):
    result = CliRunner().invoke(app, ["reproduce", "table1", "--config", str(setup / "run.yaml"), "--models", "wdl",
                                      "--seeds", "1", "--results-dir", str(setup / "grid"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in (setup / "grid").glob("*/result.json")]
    assert sorted(r["config"]["approach"]["approach"] for r in records) == ["base", "mlora", "moe-mlora"]
    assert all(r["config"]["data"]["table_path"].endswith("t.csv") and r["config"]["model"] == "wdl"
               and r["config"]["model_config"]["embedding_dim"] == 4 for r in records)


def test_reproduce_with_a_config_still_obeys_the_training_options_given_on_the_command_line(setup):
    # run.yaml says max_epochs 2 and batch 1024 by default; the command line says 1 and 64: the command line wins.
    result = CliRunner().invoke(app, ["reproduce", "table1", "--config", str(setup / "run.yaml"), "--models", "wdl",
                                      "--seeds", "1", "--results-dir", str(setup / "grid"), "--workers", "1",
                                      "--max-epochs", "1", "--batch-size", "64"])
    assert result.exit_code == 0, result.output
    trains = [json.loads(p.read_text())["config"]["train"] for p in (setup / "grid").glob("*/result.json")]
    assert len(trains) == 3 and all(t["max_epochs"] == 1 and t["batch_size"] == 64 for t in trains), trains


def test_predict_and_export_serve_numeric_and_multi_valued_features(setup):
    import torch

    from moe_mlora.serving import Predictor
    from moe_mlora.serving.export import export_run
    from moe_mlora.serving.stream import Chunk

    assert train("--config", setup / "run.yaml", "--runs-dir", setup / "f").exit_code == 0
    run = only_run(setup / "f")
    frame = pd.read_csv(setup / "t.csv", dtype=str, keep_default_na=False).head(50)
    predictor = Predictor.from_run(run)
    probabilities = predictor.predict(frame)
    program = torch.export.load(str(export_run(run, "torch-export"))).module()
    rows = predictor.encode(Chunk(frame, 0, "x", 0, "row"), "error")
    exported = program(rows.codes, rows.domains, rows.dense, rows.bags).detach().numpy()
    np.testing.assert_allclose(exported, probabilities, atol=1e-5)
    missing = frame.drop(columns="genres")
    with pytest.raises(Exception, match=r"missing column\(s\) \['genres'\]"):
        predictor.predict(missing)


def test_the_issue_run_movielens_joined_numeric_age_genres_time_split_from_yaml(real_data_dir, tmp_path):
    """ML-100K joined with u.user/u.item (examples/movielens_table.py), from examples/movielens-table.yaml."""
    import importlib.util as loader
    from pathlib import Path

    import yaml

    examples = Path(__file__).resolve().parents[2] / "examples"
    spec = loader.spec_from_file_location("movielens_table", examples / "movielens_table.py")
    module = loader.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.joined_table(real_data_dir / "ml-100k").to_csv(tmp_path / "joined.csv", index=False)
    config = yaml.safe_load((examples / "movielens-table.yaml").read_text())
    config["data"]["table_path"] = str(tmp_path / "joined.csv")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    board = importlib.util.find_spec("tensorboard") is not None  # the extra: events only where it is installed
    first = train("--config", tmp_path / "run.yaml", "--max-epochs", "1", "--runs-dir", tmp_path / "a",
                  *(["--log-dir", tmp_path / "tb"] if board else []))
    assert first.exit_code == 0, first.output
    run = only_run(tmp_path / "a")
    assert (run / "epochs.csv").is_file()
    assert not board or list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    again = train("--config", run / "result.json", "--runs-dir", tmp_path / "b")
    assert again.exit_code == 0, again.output
    wauc = [json.loads((only_run(tmp_path / name) / "result.json").read_text())["test"]["wauc"] for name in "ab"]
    assert wauc[0] == wauc[1]


def test_one_train_gets_the_cores_it_may_run_on_unless_told_and_a_config_keeps_its_threads(setup):
    from moe_mlora.training.config import available_cores

    alone = train("--config", setup / "run.yaml", "--runs-dir", setup / "cores")
    assert alone.exit_code == 0, alone.output
    record = json.loads((only_run(setup / "cores") / "result.json").read_text())
    assert record["config"]["train"]["threads"] == available_cores() == record["machine"]["threads"]
    text = (setup / "run.yaml").read_text().replace("  seed: 3\n", "  seed: 3\n  threads: 1\n")
    (setup / "one.yaml").write_text(text)
    told = train("--config", setup / "one.yaml", "--runs-dir", setup / "one")
    assert told.exit_code == 0, told.output
    assert json.loads((only_run(setup / "one") / "result.json").read_text())["config"]["train"]["threads"] == 1


def test_a_grid_runs_the_config_files_model_unless_models_are_given(tmp_path):
    from moe_mlora.experiments.grids import grid_models

    config = tmp_path / "run.yaml"
    config.write_text("model: WDL\n")
    assert grid_models(None, config, ("deepfm", "dcn")) == ["wdl"]  # it was silently replaced by the grid's own
    assert grid_models("nfm,dcn", config, ("deepfm",)) == ["nfm", "dcn"]  # the command line wins, as in train
    assert grid_models(None, None, ("deepfm", "dcn")) == ["deepfm", "dcn"]
