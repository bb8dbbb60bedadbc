"""A trained run scores new rows on its own: vocabularies, OOV rows, unknown domains, streaming files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from moe_mlora.cli import app
from moe_mlora.data import DatasetConfig, load_interactions, prepare_dataset
from moe_mlora.data.vocabulary import Vocabulary, fit_training_rows
from moe_mlora.errors import DataError
from moe_mlora.run_config import RunConfig
from moe_mlora.serving import Predictor, load_run, read_manifest
from moe_mlora.training.metrics import evaluate_predictions
from serving.conftest import train_run


def test_the_training_vocabulary_folds_rare_values_into_a_trained_oov_row():
    column = pd.Series(["a", "a", "b", "c", "c", "c", "d", "e"])
    training = np.array([True, True, True, True, True, True, False, False])  # d, e: only outside training
    vocabulary = fit_training_rows(column, training, min_count=2)
    assert vocabulary == Vocabulary(("a", "c"), oov=True) and vocabulary.size == 3
    codes, unseen = vocabulary.encode(column)
    assert unseen.tolist() == [False, False, True, False, False, False, True, True]
    assert codes.tolist() == [1, 1, 0, 2, 2, 2, 0, 0]  # b (seen once) trains the OOV row that d, e then use


def test_a_run_folder_holds_everything_inference_needs(moe_run):
    folder, _, config = moe_run
    manifest = read_manifest(folder)
    assert manifest.format == 1 and manifest.model == "deepfm" and manifest.approach == "moe-mlora"
    assert manifest.domain_names == ("north", "south", "west") and manifest.domain_column == "region"
    assert manifest.feature_columns == ["user", "item"] and manifest.adapter["config"]["experts_per_domain"] == 2
    assert abs(sum(manifest.domain_shares) - 1) < 1e-9 and RunConfig.from_dict(manifest.run_config) == config
    vocabulary = json.loads((folder / "vocabulary.json").read_text())
    assert vocabulary["fields"]["user"]["oov"] is True and vocabulary["fields"]["domain"]["values"] == ["north", "south", "west"]


def test_predict_on_the_runs_test_rows_reproduces_its_recorded_test_wauc(moe_run, table_csv):
    folder, record, config = moe_run
    table, dataset = load_interactions(config.data), prepare_dataset(config.data)
    test = dataset.split == 2
    rows = table.frame[test].rename(columns={"domain": "region"})
    probabilities = Predictor.from_run(folder).predict(rows)
    scored = evaluate_predictions(dataset.domains[test], dataset.labels[test], probabilities, dataset.spec.domain_names)
    assert abs(scored.wauc - record.test.wauc) <= 1e-6


def test_unseen_users_and_items_get_the_oov_row_and_a_finite_probability_in_input_order(moe_run):
    folder, _, _ = moe_run
    predictor = Predictor.from_run(folder)
    rows = pd.DataFrame({"user": ["u1", "never-seen", "u1"], "item": ["i1", "i1", "unseen-item"],
                         "region": ["north", "north", "west"]})
    probabilities = predictor.predict(rows)
    assert probabilities.shape == (3,) and np.isfinite(probabilities).all()
    codes = predictor.encode(_chunk(rows), "error").codes
    assert codes[1, 0] == 0 and codes[2, 1] == 0 and codes[0, 0] > 0  # the OOV code is 0
    one_by_one = [predictor.predict(rows.iloc[[i]])[0] for i in range(3)]
    np.testing.assert_allclose(probabilities, one_by_one, rtol=1e-6)
    np.testing.assert_allclose(predictor.predict(rows.iloc[::-1]), probabilities[::-1], rtol=1e-6)


def test_an_unknown_domain_is_an_error_naming_it_unless_scored_by_the_backbone(moe_run):
    folder, _, _ = moe_run
    predictor = Predictor.from_run(folder)
    rows = pd.DataFrame({"user": ["u1", "u2"], "item": ["i1", "i2"], "region": ["north", "east"]})
    with pytest.raises(DataError, match=r"row 1, column 'region': domain 'east' is not one of the run's 3 domains"):
        predictor.predict(rows)
    scored = predictor.predict(rows, unknown_domain="backbone")
    assert np.isfinite(scored).all()
    assert scored[0] == pytest.approx(predictor.predict(rows.iloc[:1])[0], abs=1e-7)  # known rows as usual


def test_backbone_scoring_is_the_model_without_adapters_averaged_over_the_domains(moe_run):
    folder, _, _ = moe_run
    predictor = Predictor.from_run(folder)
    model, manifest = load_run(folder)
    for tower in [m for m in model.modules() if hasattr(m, "linears")]:
        tower.adapter = None  # an independent oracle: the bare backbone
    rows = pd.DataFrame({"user": ["u3", "u9"], "item": ["i4", "i5"], "region": ["east", "east"]})
    codes = predictor.encode(_chunk(rows), "backbone").codes.numpy()
    expected = np.zeros(2)
    with torch.no_grad():
        for domain, share in enumerate(manifest.domain_shares):
            codes[:, -1] = domain
            expected += share * model(torch.from_numpy(codes), torch.zeros(2, dtype=torch.int64)).numpy()
    np.testing.assert_allclose(predictor.predict_logits(rows, unknown_domain="backbone"), expected, rtol=1e-5, atol=1e-6)


def test_a_paper_protocol_run_refuses_values_it_never_saw(tmp_path, table_csv):
    folder, _, _ = train_run(tmp_path, table_csv, "base", min_count=0)
    assert json.loads((folder / "vocabulary.json").read_text())["fields"]["user"]["oov"] is False
    predictor = Predictor.from_run(folder)
    rows = pd.DataFrame({"user": ["u1", "stranger"], "item": ["i1", "i1"], "region": ["north", "north"]})
    with pytest.raises(DataError, match="row 1, column 'user': value 'stranger' was never seen.*--min-count"):
        predictor.predict(rows)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_files_stream_in_chunks_with_the_same_scores_as_one_frame(moe_run, table_csv, tmp_path, suffix):
    folder, _, _ = moe_run
    rows = pd.read_csv(table_csv, dtype=str).sample(frac=1, random_state=3).head(500)
    source = tmp_path / f"rows{suffix}"
    rows.to_csv(source, index=False) if suffix == ".csv" else rows.to_parquet(source, index=False)
    output = tmp_path / f"scored{'.parquet' if suffix == '.csv' else '.csv'}"
    predictor = Predictor.from_run(folder)
    assert predictor.predict_file(source, output, chunk_rows=37) == 500
    scored = pd.read_parquet(output) if output.suffix == ".parquet" else pd.read_csv(output, dtype={"region": str})
    assert list(scored.columns) == ["region", "probability"] and scored["region"].tolist() == rows["region"].tolist()
    np.testing.assert_allclose(scored["probability"], predictor.predict(rows), rtol=1e-6)


def test_the_predict_command_scores_new_rows_and_refuses_an_unknown_domain_in_one_line(moe_run, tmp_path):
    folder, _, _ = moe_run
    source = tmp_path / "new.csv"
    source.write_text("user,item,region\nu1,i1,north\nnobody,nothing,south\nu2,i3,east\n")
    output = tmp_path / "out.csv"
    refused = CliRunner().invoke(app, ["predict", str(folder), "--input", str(source), "--output", str(output)])
    assert refused.exit_code == 2 and "line 4, column 'region': domain 'east'" in refused.output
    assert refused.output.count("error:") == 1 and "Traceback" not in refused.output and not output.exists()
    done = CliRunner().invoke(app, ["predict", str(folder), "--input", str(source), "--output", str(output),
                                    "--unknown-domain", "backbone", "--no-progress"])
    assert done.exit_code == 0, done.output
    scored = pd.read_csv(output)
    assert len(scored) == 3 and scored["probability"].between(0, 1).all()


@pytest.mark.parametrize("content, message", [
    ("user,region\nu1,north\n", "missing column(s) ['item']"),
    ("user,item,region\nu1,i1,north\nu2,i2,north,extra,cells\n", "line 3"),
    ("user,item,region\nu1,i1,\n", "domain '<missing>' is not one of"),
])
def test_bad_input_rows_are_one_line_errors_naming_file_and_line(moe_run, tmp_path, content, message):
    folder, _, _ = moe_run
    source = tmp_path / "bad.csv"
    source.write_text(content)
    result = CliRunner().invoke(app, ["predict", str(folder), "--input", str(source), "--output", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and message in result.output and "bad.csv" in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "o.csv").exists()


def test_adapters_refuse_a_backbone_they_were_not_trained_on(moe_run, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    folder, _, _ = moe_run
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    weights = load_file(str(copy / "model.safetensors"))
    weights["bias"] = weights["bias"] + 1.0
    save_file(weights, str(copy / "model.safetensors"))
    with pytest.raises(DataError, match="backbone sha256 .* is not the run's"):
        Predictor.from_run(copy)
    from moe_mlora.adapters import load_adapters
    from moe_mlora.training.checkpoint import backbone_sha256, load_backbone

    model = load_backbone(copy)
    with pytest.raises(DataError, match="trained on backbone"):
        load_adapters(model, copy, backbone_sha256=backbone_sha256(model))


def test_the_table_default_is_a_trained_oov_row_and_the_paper_datasets_keep_all_row_vocabularies():
    assert DatasetConfig("table", split_by="d", table_path="x.csv").min_count == 2
    assert DatasetConfig("movielens-100k").min_count == 0


def _chunk(frame):
    from moe_mlora.serving.stream import Chunk

    return Chunk(frame.reset_index(drop=True), 0, "input", 0, "row")
