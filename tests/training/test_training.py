import json

import pytest
import torch
from typer.testing import CliRunner

from helpers import toy_parts
from moe_mlora.cli import app
from moe_mlora.data import DatasetConfig, prepare_dataset
from moe_mlora.models import build_model
from moe_mlora.models.registry import PAPER_MODELS
from moe_mlora.training.checkpoint import load_backbone, save_backbone
from moe_mlora.methods.lora import BASE_PHASE
from moe_mlora.training.config import TrainConfig, set_seed
from moe_mlora.training.evaluation import evaluate
from moe_mlora.training.loop import fit


@pytest.fixture(scope="module")
def ml100k_gender(real_data_dir):
    return prepare_dataset(DatasetConfig("movielens-100k", "gender"), real_data_dir)


@pytest.mark.parametrize("name", PAPER_MODELS)  # dnn is WDL without its linear term: WDL covers it
def test_each_model_learns_movielens_100k_beyond_070_wauc(name, ml100k_gender):
    # Three epochs suffice to pass the bar; the README records full early-stopped runs.
    set_seed(0)
    model = build_model(name, ml100k_gender.spec)
    fit(model, BASE_PHASE, ml100k_gender.part("train"), ml100k_gender.part("valid"),
        ml100k_gender.spec.domain_names, TrainConfig(max_epochs=3, progress=False))
    assert evaluate(model, ml100k_gender.part("test"), ml100k_gender.spec.domain_names).wauc >= 0.70


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path):
    spec, _, _, test = toy_parts()
    model = build_model("xdeepfm", spec).eval()
    save_backbone(model, tmp_path)
    loaded = load_backbone(tmp_path).eval()
    assert torch.equal(loaded(test.codes, test.domains), model(test.codes, test.domains))


def test_cli_train_prints_the_test_table_and_writes_json(real_data_dir, tmp_path):
    result = CliRunner().invoke(app, [
        "train", "--model", "deepfm", "--dataset", "movielens-100k", "--split-by", "gender", "--approach", "base",
        "--max-epochs", "1", "--runs-dir", str(tmp_path), "--data-dir", str(real_data_dir), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "WAUC" in result.output and "[base] epoch  1" in result.output
    (record,) = tmp_path.glob("*/result.json")
    payload = json.loads(record.read_text())
    assert payload["status"] == "ok" and [d["domain"] for d in payload["test"]["domains"]] == ["F", "M"]
    assert payload["test"]["wauc"] > 0.6


def test_cli_moe_mlora_reports_each_phase(real_data_dir, tmp_path):
    result = CliRunner().invoke(app, [
        "train", "--model", "wdl", "--split-by", "age", "--approach", "moe-mlora", "--experts-per-domain", "2",
        "--max-epochs", "1", "--runs-dir", str(tmp_path), "--data-dir", str(real_data_dir), "--no-progress"])
    assert result.exit_code == 0, result.output
    for phase in ("phase1-backbone", "phase2-experts", "phase3-gate"):
        assert phase in result.output
    for diagnostic in ("gate per domain", "weight on own experts", "own-experts", "mixture", "backbone"):
        assert diagnostic in result.output
    record = json.loads(next(tmp_path.glob("*/result.json")).read_text())
    assert len(record["diagnostics"]["gate"]) == 7 and set(record["diagnostics"]["paths"]) == {
        "backbone", "own-experts", "mixture"}
    assert {p.name for p in next(tmp_path.iterdir()).iterdir()} >= {"model.safetensors", "adapter.safetensors", "result.json"}


def test_cli_rejects_bad_approach_in_one_line():
    result = CliRunner().invoke(app, ["train", "--approach", "lora"])
    assert result.exit_code == 2 and "unknown approach 'lora'" in result.output


@pytest.mark.parametrize("variant", [["--gate-init", "own-domain", "--gate-learning-rate", "0.01"],
                                     ["--gate-input", "features"], ["--schedule", "authors-code"]])
def test_cli_runs_each_moe_variant_and_records_it(real_data_dir, tmp_path, variant):
    result = CliRunner().invoke(app, [
        "train", "--model", "wdl", "--split-by", "gender", "--approach", "moe-mlora", "--max-epochs", "1",
        "--runs-dir", str(tmp_path), "--data-dir", str(real_data_dir), "--no-progress", *variant])
    assert result.exit_code == 0, result.output
    record = json.loads(next(tmp_path.glob("*/result.json")).read_text())
    approach = record["config"]["approach"]
    settings = dict(zip(variant[::2], variant[1::2]))
    for option, value in settings.items():
        recorded = approach[option.removeprefix("--").replace("-", "_")]
        assert str(recorded) == value or recorded == float(value)
    assert record["diagnostics"]["paths"]["mixture"]["test"] == record["test"]["wauc"]
