"""Settings added for other protocols (Scenario-Wise Rec's): Adam weight decay on every weight and selection by
the AUC pooled over all rows. At their defaults they leave every shipped run's identity as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers import toy_parts
from moe_mlora.errors import ConfigError
from moe_mlora.run_config import RunConfig
from moe_mlora.models import build_model
from moe_mlora.training.metrics import Evaluation, SelectBy
from moe_mlora.training.optim import ModelAdam
from moe_mlora.training.approaches import ApproachConfig, train_approach
from moe_mlora.training.config import TrainConfig

SHIPPED = sorted((Path(__file__).parents[2] / "docs" / "results").glob("**/result.json"))


@pytest.mark.skipif(not SHIPPED, reason="no shipped run records in docs/results")
def test_every_shipped_record_keeps_its_key_under_todays_config():
    for path in SHIPPED:
        record = json.loads(path.read_text())
        assert RunConfig.from_dict(record["config"]).key() == record["key"], path.parent.name


def test_weight_decay_joins_every_group_and_a_negative_one_is_refused():
    model = build_model("deepfm", toy_parts(200)[0])
    groups = ModelAdam(model, list(model.parameters()), 1e-3, decay_all=1e-5).adam.param_groups
    assert [g["weight_decay"] for g in groups] == [pytest.approx(1e-5), pytest.approx(2 * 1e-5 + 1e-5)]
    with pytest.raises(ConfigError, match="weight decay"):
        TrainConfig(weight_decay=-1.0)


def test_weight_decay_changes_training_and_is_part_of_the_runs_identity():
    spec, train, valid, _ = toy_parts(1500)
    runs = {}
    for decay in (0.0, 0.5):
        torch.manual_seed(0)
        model = build_model("wdl", spec, dnn_hidden=(16,))
        config = TrainConfig(max_epochs=1, batch_size=256, progress=False, weight_decay=decay)
        train_approach(model, train, valid, spec.domain_names, ApproachConfig("base"), config)
        runs[decay] = model.tower.linears[0].weight.detach().clone()
    assert runs[0.5].norm() < runs[0.0].norm()  # decay pulls the weights towards zero
    plain, decayed = RunConfig.from_partial({}, "test"), RunConfig.from_partial({"train": {"weight_decay": 1e-5}}, "test")
    assert plain.key() != decayed.key()


def test_selection_by_auc_uses_the_auc_pooled_over_all_rows():
    evaluation = Evaluation(wauc=0.7, auc=0.8, logloss=0.5, domains=[], excluded=[])
    assert evaluation.score(SelectBy.AUC) == 0.8 and evaluation.score(SelectBy.WAUC) == 0.7
