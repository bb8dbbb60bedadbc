"""The command line's table of bad inputs: each ends in exit status 2 and one line naming what is wrong."""

import pytest
from typer.testing import CliRunner

from moe_mlora.cli import app

CASES = [
    (["train", "--batch-size", "0"], "batch size must be at least 1"),
    (["train", "--batch-size", "-1"], "batch size must be at least 1"),
    (["train", "--max-epochs", "0"], "max epochs must be at least 1"),
    (["train", "--max-epochs", "-3"], "max epochs must be at least 1"),
    (["train", "--patience", "0"], "patience must be at least 1"),
    (["train", "--learning-rate", "-0.001"], "learning rate must be a positive number"),
    (["train", "--learning-rate", "nan"], "learning rate must be a positive number"),
    (["train", "--approach", "mlora", "--rank", "0"], "adapter rank must be at least 1"),
    (["train", "--approach", "mlora", "--rank", "-4"], "adapter rank must be at least 1"),
    (["train", "--approach", "mlora", "--lora-reduce", "0"], "lora-reduce must be at least 1"),
    (["train", "--approach", "moe-mlora", "--experts-per-domain", "0"], "experts per domain must be at least 1"),
    (["train", "--approach", "base", "--experts-per-domain", "2"], "--experts-per-domain applies to moe-mlora only"),
    (["train", "--approach", "moe-mlora", "--gate-init", "warm"], "gate init must be one of"),
    (["train", "--approach", "moe-mlora", "--gate-learning-rate", "0"], "gate learning rate must be a positive number"),
    (["train", "--batch-order", "random"], "batch order must be one of shuffled, by-domain"),
    (["train", "--select-by", "accuracy"], "select-by must be one of wauc, mean-auc, auc"),
    (["train", "--device", "banana"], "is not a device torch knows"),
    (["train", "--dataset", "taobao-synthetic", "--n-themes", "0"], "--n-themes must be at least 1"),
    (["reproduce", "table1", "--seeds", "0"], "--seeds must be at least 1"),
    (["reproduce", "table1", "--seeds", "-1"], "--seeds must be at least 1"),
    (["reproduce", "table1", "--datasets", "movielens-100k:gendr"], "movielens-100k splits are gender, age, occupation"),
    (["reproduce", "table1", "--models", "lr"], "unknown model(s) ['lr']"),
    (["reproduce", "table1", "--moe-variant", "gate-init=warm"], "gate init must be one of"),
    (["reproduce", "experts", "--experts-per-domain", "1,x"], "--experts-per-domain takes whole numbers"),
    (["reproduce", "experts", "--experts-per-domain", "0,2"], "experts per domain must be at least 1"),
    (["reproduce", "ablation", "--variants", "gate-lr=fast"], "gate-lr takes a number"),
    (["train", "--threads", "0"], "threads must be at least 1"),
    (["reproduce", "table1", "--threads", "-2"], "threads must be at least 1"),
    (["train", "--min-count", "-1"], "--min-count must be 0 (vocabulary over all rows) or more"),
    (["predict", "no-such-run", "--input", "x.csv", "--output", "y.csv"], "no manifest.json; not a run folder"),
    (["predict", "no-such-run", "--input", "x.csv", "--output", "y.csv", "--unknown-domain", "guess"],
     "--unknown-domain must be one of error, backbone"),
    (["export", "no-such-run", "--format", "tflite"], "--format must be one of onnx, torch-export"),
    (["export", "no-such-run"], "no manifest.json; not a run folder"),
    (["add-domain", "no-such-run", "--table", "t.csv", "--domain", "x"], "no manifest.json; not a run folder"),
    (["train", "--split", "time"], "--split must be random, time:COLUMN"),
    (["train", "--split", "time:timestamp"], "applies to dataset 'table'"),
    (["train", "--numeric", "age"], "--numeric applies to dataset 'table'"),
    (["train", "--config", "no-such.yaml"], "no-such.yaml: cannot read the config"),
    (["reproduce", "table1", "--config", "no-such.yaml"], "no-such.yaml: cannot read the config"),
    (["train", "--log-dir", "tb", "--max-epochs", "0"], "max epochs must be at least 1"),
    (["train", "--model", "../../outside/deepfm"], "unknown model '../../outside/deepfm'"),
    (["train", "--model", "deep/fm", "--runs-dir", "runs"], "unknown model 'deep/fm'"),
]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_option_is_one_line_and_writes_nothing(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output and not list(tmp_path.iterdir())


CASES_MORE = [
    (["train", "--approach", "star", "--phase2-schedule", "sequential"], "--phase2-schedule applies to moe-mlora only"),
    (["train", "--approach", "moe-mlora", "--schedule", "authors-code", "--selection", "trained"],
     "--selection applies to the paper's schedule"),
    (["train", "--approach", "moe-mlora", "--selection", "best"], "selection must be one of greedy, trained"),
    (["train", "--min-epochs", "5", "--max-epochs", "1"], "--min-epochs 5 exceeds --max-epochs 1"),
]


@pytest.mark.parametrize("args, message", CASES_MORE, ids=[" ".join(a) for a, _ in CASES_MORE])
def test_settings_that_would_be_ignored_are_one_line_errors(args, message, tmp_path, monkeypatch):
    test_bad_option_is_one_line_and_writes_nothing(args, message, tmp_path, monkeypatch)


# (command, config file's text, the one line): the file lies outside the working folder, which stays empty.
CONFIG_CASES = [
    (["train"], "model_config: {dnn_dropout: 1.5}", "model_config.dnn_dropout must be in [0, 1), got 1.5"),
    (["train"], "model_config: {dnn_hidden: []}", "model_config.dnn_hidden must be a non-empty list"),
    (["train"], "model_config: {embedding_dim: 0}", "model_config.embedding_dim must be at least 1, got 0"),
    (["reproduce", "table1", "--models", "deepfm"], "approach: {approach: mlora, rank: 4}",
     "approach settings (rank) in the file would not be used"),
    (["reproduce", "table1", "--models", "deepfm"], "approach: {approach: star}",
     "approach 'star' in the file would not be used"),
]


@pytest.mark.parametrize("args, text, message", CONFIG_CASES, ids=[t for _, t, _ in CONFIG_CASES])
def test_a_bad_config_file_is_one_line_before_any_data_or_folder(args, text, message, tmp_path, monkeypatch):
    config = tmp_path / "config" / "run.yaml"
    config.parent.mkdir()
    config.write_text(text + "\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = CliRunner().invoke(app, [*args, "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output and not list(work.iterdir())
