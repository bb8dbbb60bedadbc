import json

import pytest
import torch
from typer.testing import CliRunner

from helpers import toy_parts
from moe_mlora.cli import app
from moe_mlora.data import DatasetConfig, prepare_dataset
from moe_mlora.models import MODELS, build_model
from moe_mlora.training.checkpoint import load_backbone, save_backbone
from moe_mlora.training.loop import TrainConfig, evaluate, fit, iterate_batches, set_seed


@pytest.fixture(scope="module")
def ml100k_gender(real_data_dir):
    return prepare_dataset(DatasetConfig("movielens-100k", "gender"), real_data_dir)


@pytest.mark.parametrize("name", list(MODELS))
def test_each_model_learns_movielens_100k_beyond_070_wauc(name, ml100k_gender):
    # Three epochs suffice to pass the bar; the README records full early-stopped runs.
    set_seed(0)
    model = build_model(name, ml100k_gender.spec)
    fit(model, ml100k_gender.part("train"), ml100k_gender.part("valid"), ml100k_gender.spec.domain_names,
        TrainConfig(max_epochs=3, progress=False))
    assert evaluate(model, ml100k_gender.part("test"), ml100k_gender.spec.domain_names).wauc >= 0.70


def test_same_seed_gives_identical_wauc():
    spec, train, valid, test = toy_parts()
    results = []
    for _ in range(2):
        set_seed(7)
        model = build_model("autoint", spec)
        fit(model, train, valid, spec.domain_names, TrainConfig(max_epochs=2, seed=7, progress=False))
        results.append(evaluate(model, test, spec.domain_names).wauc)
    assert abs(results[0] - results[1]) < 1e-6


def test_early_stopping_restores_the_best_epoch():
    spec, train, valid, _ = toy_parts()
    set_seed(0)
    model = build_model("wdl", spec)
    result = fit(model, train, valid, spec.domain_names,
                 TrainConfig(learning_rate=0.05, max_epochs=30, patience=2, progress=False))
    assert len(result.history) - result.best_epoch == 2
    assert evaluate(model, valid, spec.domain_names).wauc == pytest.approx(result.best_valid_wauc, abs=1e-12)


def test_by_domain_batches_hold_one_domain_and_cover_every_row():
    _, train, _, _ = toy_parts()
    batches = list(iterate_batches(train, 100, "by-domain", torch.Generator().manual_seed(0)))
    assert all(len(torch.unique(b.domains)) == 1 for b in batches)
    assert sum(len(b) for b in batches) == len(train)
    assert sorted(torch.cat([b.labels for b in batches]).tolist()) == sorted(train.labels.tolist())


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
    assert {p.name for p in next(tmp_path.iterdir()).iterdir()} >= {"model.safetensors", "adapter.safetensors", "result.json"}


def test_cli_rejects_bad_approach_in_one_line():
    result = CliRunner().invoke(app, ["train", "--approach", "lora"])
    assert result.exit_code == 2 and "unknown approach 'lora'" in result.output
