"""A method added as a user would: one class and one registry line. The CLI trains it, the run folder
saves and reloads it, predict and export serve it, and the report names it, with no other edit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from moe_mlora.cli import app
from moe_mlora.errors import ConfigError
from moe_mlora.experiments.records import RunRecord
from moe_mlora.settings import setting
from moe_mlora.experiments.report import write_report
from moe_mlora.layers import ModelPart
from moe_mlora.methods import METHODS, Method
from moe_mlora.serving import Predictor


class DomainBias(ModelPart):
    """A logit offset per domain: about the smallest multi-domain method there is."""

    def __init__(self, n_domains: int) -> None:
        super().__init__(n_domains)
        self.offset = nn.Parameter(torch.zeros(n_domains))

    def extra_logit(self, embeddings, domains):
        return self.offset[domains]


def attach(model, n_domains, run_seed, approach):
    model.domain_part = DomainBias(n_domains)


DOMAIN_BIAS = Method("domain-bias", "DomainBias", "a test plug-in", attach=attach)


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(METHODS, DOMAIN_BIAS.name, DOMAIN_BIAS)


def table(path, n_rows=1500, seed=0):
    rng = np.random.default_rng(seed)
    region = rng.integers(0, 3, n_rows)
    label = (rng.random(n_rows) < np.array([0.2, 0.5, 0.8])[region]).astype(int)
    pd.DataFrame({"user": rng.integers(0, 50, n_rows), "item": rng.integers(0, 40, n_rows),
                  "region": np.array(["north", "south", "west"])[region], "clicked": label}).to_csv(path, index=False)
    return path


def test_a_registered_method_trains_saves_serves_exports_and_reports_without_other_edits(registered, tmp_path):
    csv = table(tmp_path / "clicks.csv")
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["train", "--approach", "domain-bias", "--dataset", "table", "--table-path", str(csv),
                                      "--split-by", "region", "--features", "user,item", "--label-column", "clicked",
                                      "--runs-dir", str(runs), "--max-epochs", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    run = next(runs.iterdir())
    assert {"method.safetensors", "method.json"} <= {p.name for p in run.iterdir()}
    predictor = Predictor.from_run(run)
    offsets = predictor.model.domain_part.offset.detach()
    assert offsets.abs().min() > 0  # trained and reloaded: the offsets moved from zero, in the order of the rates
    assert offsets[0] < offsets[1] < offsets[2]
    probabilities = predictor.predict(pd.read_csv(csv).head(20))
    assert probabilities.shape == (20,) and np.all((probabilities > 0) & (probabilities < 1))
    exported = CliRunner().invoke(app, ["export", str(run), "--format", "torch-export", "--output", str(tmp_path / "m.pt2")])
    assert exported.exit_code == 0, exported.output
    report = write_report(runs)["report"].read_text()
    assert "DomainBias" in report


def test_serving_refuses_in_one_line_what_a_method_does_not_offer(registered, tmp_path):
    csv = table(tmp_path / "clicks.csv")
    runs = tmp_path / "runs"
    CliRunner().invoke(app, ["train", "--approach", "domain-bias", "--dataset", "table", "--table-path", str(csv),
                             "--split-by", "region", "--features", "user,item", "--label-column", "clicked",
                             "--runs-dir", str(runs), "--max-epochs", "1", "--no-progress"])
    run = next(runs.iterdir())
    frame = pd.read_csv(csv).head(5).assign(region="east")
    frame.to_csv(tmp_path / "east.csv", index=False)
    refusals = {
        "add-domain": ["add-domain", str(run), "--table", str(tmp_path / "east.csv"), "--domain", "east"],
        "backbone": ["predict", str(run), "--input", str(tmp_path / "east.csv"), "--output", str(tmp_path / "out.csv"),
                     "--unknown-domain", "backbone"],
        "fold": ["export", str(run), "--format", "torch-export", "--domain", "north", "--output", str(tmp_path / "n.pt2")],
    }
    for what, arguments in refusals.items():
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code != 0 and "Traceback" not in result.output, (what, result.output)
        assert len(result.output.strip().splitlines()) == 1, (what, result.output)
        assert "DomainBias" in result.output, (what, result.output)


@dataclass(frozen=True)
class ScaledBiasSettings:
    scale: float = setting(1.0, help="ScaledBias: the factor on every domain's offset.")


class ScaledBias(DomainBias):
    def __init__(self, n_domains: int, scale: float) -> None:
        super().__init__(n_domains)
        self.scale = scale

    def extra_logit(self, embeddings, domains):
        return self.scale * self.offset[domains]


def attach_scaled(model, n_domains, run_seed, approach):
    model.domain_part = ScaledBias(n_domains, SCALED_BIAS.settings_of(approach).scale)


SCALED_BIAS = Method("scaled-bias", "ScaledBias", "a test plug-in with a setting", attach=attach_scaled,
                     settings=ScaledBiasSettings)


def test_a_method_with_its_own_setting_takes_it_from_a_config_file_and_the_python_api_and_keys_runs_by_it(
        monkeypatch, tmp_path):
    import moe_mlora

    monkeypatch.setitem(METHODS, SCALED_BIAS.name, SCALED_BIAS)
    csv = table(tmp_path / "clicks.csv")
    data = dict(dataset="table", table_path=str(csv), split_by="region", features=["user", "item"], label_column="clicked")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"data": data, "approach": {"approach": "scaled-bias",
                                                                 "method_settings": {"scale": 3.0}},
                                      "train": {"max_epochs": 1, "progress": False}}))
    result = CliRunner().invoke(app, ["train", "--config", str(config), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    assert "scaled-bias-scale-3.0" in run.name
    assert Predictor.from_run(run).model.domain_part.scale == 3.0  # the setting travels with the run folder
    default = moe_mlora.train(approach="scaled-bias", max_epochs=1, runs_dir=tmp_path / "runs", **data)
    same = moe_mlora.train(approach="scaled-bias", method_settings={"scale": 1.0}, max_epochs=1,
                           runs_dir=tmp_path / "runs", **data)
    assert default.key == same.key  # a setting given at its default keys the run as the default does
    assert default.key != next(r for r in [RunRecord.read(run)]).key
    with pytest.raises(ConfigError, match="scaled-bias has no setting 'scal'"):
        moe_mlora.train(approach="scaled-bias", method_settings={"scal": 2.0}, **data)
    with pytest.raises(ConfigError, match="scaled-bias setting 'scale' must be a number"):
        moe_mlora.train(approach="scaled-bias", method_settings={"scale": "big"}, **data)


def test_a_two_phase_method_with_one_setting_is_one_class_its_settings_and_a_registry_entry(monkeypatch, tmp_path):
    """Phase 1 the backbone alone, phase 2 only the method's parts on the frozen backbone: the loop, the record,
    the run folder and serving need nothing more."""
    import moe_mlora
    from moe_mlora.layers.domain_part import backbone_parameters
    from moe_mlora.training.phase import Phase, PhaseName, Trains

    two_phase = Method("two-phase-bias", "TwoPhaseBias", "a test plug-in: backbone, then its parts",
                       phases=(Phase(PhaseName.BACKBONE, Trains.BACKBONE, None, seed_key="backbone"),
                               Phase(PhaseName.PARTS, Trains.PARTS, None, seed_key="parts")),
                       attach=lambda model, n, seed, approach: setattr(
                           model, "domain_part", ScaledBias(n, METHODS["two-phase-bias"].settings_of(approach).scale)),
                       settings=ScaledBiasSettings)
    monkeypatch.setitem(METHODS, two_phase.name, two_phase)
    csv = table(tmp_path / "clicks.csv")
    data = dict(dataset="table", table_path=str(csv), split_by="region", features=["user", "item"], label_column="clicked")
    record = moe_mlora.train(approach="two-phase-bias", method_settings={"scale": 2.0}, max_epochs=3,
                             runs_dir=tmp_path / "runs", **data)
    assert [phase.phase for phase in record.phases] == ["phase1-backbone", "parts"]
    assert record.phases[1].trainable_parameters == 3  # the three domain offsets, nothing of the backbone
    run = record.config.run_dir(tmp_path / "runs")
    predictor = Predictor.from_run(run)
    assert predictor.model.domain_part.scale == 2.0 and predictor.model.domain_part.offset.abs().min() > 0
    # phase 2 leaves the backbone as phase 1 ended: a Base run of the same seed trains the same backbone bitwise
    base = moe_mlora.train(approach="base", max_epochs=3, runs_dir=tmp_path / "runs", **data)
    base_model = Predictor.from_run(base.config.run_dir(tmp_path / "runs")).model
    assert all(torch.equal(a, b) for a, b in zip(backbone_parameters(predictor.model), backbone_parameters(base_model)))


# The registered methods added or changed under #39, through the suite a plug-in passes: train (CLI), save and
# reload, predict, an exported graph scoring as predict does, add-domain or a one-line refusal, the report.
SUITE_ARMS = ["separate", "apg", "apg[condition=self]", "hamur", "hamur[backbone=shared]", "m2m", "ple[levels=2]", "star[auxiliary-width=0,normalisation=none]", "star[output=domain]", "shared-bottom[output=domain]", "mmoe[output=domain]",
              "ple[output=domain]"]


@pytest.mark.parametrize("arm", SUITE_ARMS)
def test_a_registered_method_passes_the_plugin_suite(arm, tmp_path):
    from moe_mlora.serving.export import export_model
    from moe_mlora.serving.predictor import Chunk, UnknownDomain
    from moe_mlora.training.approaches import ApproachConfig

    approach = ApproachConfig.from_arm(arm)
    options = [f"--{approach.approach}-{name.replace('_', '-')}={value}" for name, value in approach.method_settings.items()]
    csv = table(tmp_path / "clicks.csv")
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["train", "--approach", approach.approach, *options, "--dataset", "table",
                                      "--table-path", str(csv), "--split-by", "region", "--features", "user,item",
                                      "--label-column", "clicked", "--runs-dir", str(runs), "--max-epochs", "2",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    run = next(runs.iterdir())
    predictor = Predictor.from_run(run)
    assert predictor.manifest.config.approach.arm == arm
    rows = pd.read_csv(csv).head(40)
    probabilities = predictor.predict(rows)
    assert probabilities.shape == (40,) and np.all((probabilities > 0) & (probabilities < 1))
    program = torch.export.load(str(export_model(predictor.model.eval(), tmp_path / "m.pt2", "torch-export"))).module()
    batch = predictor.encode(Chunk(rows, 0, "input", 0, "row"), UnknownDomain.ERROR)
    exported = program(batch.codes, batch.domains).detach().numpy().ravel()  # the graph ends in the probability
    np.testing.assert_allclose(exported, probabilities, rtol=0, atol=1e-5)
    pd.read_csv(csv).head(60).assign(region="east").to_csv(tmp_path / "east.csv", index=False)
    grown = CliRunner().invoke(app, ["add-domain", str(run), "--table", str(tmp_path / "east.csv"), "--domain", "east"])
    if METHODS[approach.approach].grows and "levels" not in arm:
        assert grown.exit_code == 0, grown.output
    else:
        assert grown.exit_code != 0 and len(grown.output.strip().splitlines()) == 1, grown.output
    assert METHODS[approach.approach].title in write_report(runs)["report"].read_text()
