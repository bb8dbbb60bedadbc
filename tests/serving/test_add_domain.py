"""Adding a domain trains only what is new: every existing weight and every existing domain's scores stay."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from moe_mlora.cli import app
from moe_mlora.errors import ConfigError, DataError
from moe_mlora.serving import Predictor, read_manifest
from moe_mlora.serving.add_domain import add_domain
from serving.conftest import make_table, train_run


@pytest.fixture(scope="module")
def new_domain_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("new") / "east.csv"
    make_table(900, seed=7, domains=("east",), users=300).drop(columns="region").to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, table_csv, moe_run):
    folder = tmp_path_factory.mktemp("more-runs")
    return {"moe-mlora": moe_run[0], "mlora": train_run(folder, table_csv, "mlora")[0],
            "base": train_run(folder, table_csv, "base")[0]}


@pytest.mark.parametrize("approach", ["base", "mlora", "moe-mlora"])
def test_existing_weights_stay_bitwise_and_existing_domains_score_as_before(runs, table_csv, new_domain_csv, approach, tmp_path):
    source = runs[approach]
    output, report = add_domain(source, new_domain_csv, "east", tmp_path / "grown")
    old_backbone, new_backbone = load_file(str(source / "model.safetensors")), load_file(str(output / "model.safetensors"))
    for name, old in old_backbone.items():
        new = new_backbone[name]
        assert torch.equal(new if new.shape == old.shape else new[:-1], old), name  # one new row at most
    if approach != "base":
        old_adapter, new_adapter = load_file(str(source / "adapter.safetensors")), load_file(str(output / "adapter.safetensors"))
        k, n = (2, 3) if approach == "moe-mlora" else (1, 3)
        moved = torch.tensor([(e % n) + (e // n) * (n + 1) for e in range(k * n)])  # old expert -> its new number
        for name, old in old_adapter.items():
            new = new_adapter[name]
            if ".experts." in name or "to_experts" in name:
                assert torch.equal(new[moved], old), name
            elif "domain_embedding" in name:
                assert torch.equal(new[:n], old), name
    existing = pd.read_csv(table_csv, dtype=str)
    before, after = Predictor.from_run(source).predict(existing), Predictor.from_run(output).predict(existing)
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)
    assert report.rows == {"train": 540, "valid": 180, "test": 180} and report.test_auc is not None
    assert read_manifest(output).domain_names == ("north", "south", "west", "east")


def test_the_new_domain_is_scored_by_its_own_pieces_and_learns(runs, new_domain_csv, tmp_path):
    output, report = add_domain(runs["moe-mlora"], new_domain_csv, "east", tmp_path / "grown")
    rows = pd.read_csv(new_domain_csv, dtype=str).assign(region="east")
    grown, source = Predictor.from_run(output), Predictor.from_run(runs["moe-mlora"])
    assert not np.allclose(grown.predict(rows), source.predict(rows, unknown_domain="backbone"))
    assert report.valid_auc >= report.backbone_valid_auc - 0.02  # selection on validation never ends far below the start
    assert len(read_manifest(output).added_domains) == 1


def test_adding_a_known_domain_or_rows_of_other_domains_is_refused(runs, table_csv, tmp_path):
    with pytest.raises(ConfigError, match="'north' is already one of the run's domains"):
        add_domain(runs["mlora"], table_csv, "north", tmp_path / "x")
    with pytest.raises(DataError, match=r"line 2, column 'region': a row of domain '\w+'; the table must hold only"):
        add_domain(runs["mlora"], table_csv, "east", tmp_path / "y")
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("user,item,clicked\nu1,i1,1\nu2,i2,0\n")
    with pytest.raises(DataError, match="at least 20 rows with both labels"):
        add_domain(runs["mlora"], tiny, "east", tmp_path / "z")


def test_the_add_domain_command_reports_the_new_domains_auc_against_the_backbone(runs, new_domain_csv, tmp_path):
    result = CliRunner().invoke(app, ["add-domain", str(runs["mlora"]), "--table", str(new_domain_csv), "--domain",
                                      "east", "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "source run's backbone alone" in result.output and "with the added domain" in result.output
    assert (tmp_path / "out" / "add_domain.json").is_file()


@pytest.mark.parametrize("approach", ["star"])  # every growable method's rule: tests/methods (in memory)
def test_a_method_with_per_domain_parts_grows_its_runs_too(table_csv, new_domain_csv, approach, tmp_path):
    source = train_run(tmp_path / "runs", table_csv, approach)[0]
    output, report = add_domain(source, new_domain_csv, "east", tmp_path / "grown")
    existing = pd.read_csv(table_csv, dtype=str)
    before, after = Predictor.from_run(source).predict(existing), Predictor.from_run(output).predict(existing)
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)  # every old domain scores as before
    old_parts, new_parts = load_file(str(source / "method.safetensors")), load_file(str(output / "method.safetensors"))
    for name, old in old_parts.items():
        new = new_parts[name]
        assert torch.equal(new if new.shape == old.shape else new[: old.shape[0]], old), name
    assert report.test_auc is not None and report.backbone_test_auc is None  # no backbone-alone path to compare
    east = pd.read_csv(new_domain_csv, dtype=str).assign(region="east")
    assert np.isfinite(Predictor.from_run(output).predict(east)).all()
