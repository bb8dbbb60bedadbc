"""MoE-MLoRA's gate variants, the authors' schedule and the diagnostics, each by its defining property."""

import copy

import pytest
import torch

from helpers import toy_parts
from moe_mlora.adapters import AdapterConfig, AdapterMode, adapters_of, attach_adapters, merge_adapters, set_adapter_mode
from moe_mlora.errors import ConfigError
from moe_mlora.models import build_model
from moe_mlora.training.approaches import SCHEDULES, ApproachConfig, train_approach
from moe_mlora.training.config import TrainConfig, set_seed
from moe_mlora.training.diagnostics import moe_diagnostics
from moe_mlora.training.evaluation import evaluate, predict_logits
from moe_mlora.training.loop import enter_phase
from moe_mlora.training.optim import ModelAdam

FAST = TrainConfig(learning_rate=1e-2, max_epochs=6, patience=2, batch_size=256, progress=False)


def adapted(k=2, gate_input="domain", name="deepfm"):
    spec, train, valid, test = toy_parts()
    torch.manual_seed(0)
    model = build_model(name, spec)
    (adapter,) = attach_adapters(model, AdapterConfig("moe-mlora", spec.n_domains, k, rank=4, gate_input=gate_input))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in adapter.experts.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return spec, model, train, valid, test


@pytest.mark.parametrize("k", [1, 3])
def test_own_domain_gate_init_starts_phase3_at_the_phase2_routing(k):
    spec, model, train, _, _ = adapted(k)
    adapter = adapters_of(model)[0]
    adapter.gate.route_to_own_experts(adapter.config.ownership())
    set_adapter_mode(model, AdapterMode.MIXTURE)
    mixture = predict_logits(model, train)
    set_adapter_mode(model, AdapterMode.OWN_EXPERTS)
    own = predict_logits(model, train)
    assert (mixture - own).abs().max() < 1e-3
    weights = adapter.gate(torch.arange(spec.n_domains))
    assert torch.allclose((weights * adapter.config.ownership()).sum(1), torch.ones(spec.n_domains), atol=1e-3)


def test_own_experts_routing_is_each_domains_experts_one_over_k_each():
    spec, model, train, _, _ = adapted(k=2)
    set_adapter_mode(model, AdapterMode.OWN_EXPERTS)
    adapter = adapters_of(model)[0]
    weights = adapter.routing(torch.tensor([0, 2]))
    expected = torch.zeros(2, 6)
    expected[0, [0, 3]] = 0.5
    expected[1, [2, 5]] = 0.5
    assert torch.equal(weights, expected)


def test_a_feature_gate_gives_rows_of_one_domain_different_weights_and_is_never_merged():
    spec, model, train, _, _ = adapted(gate_input="features")
    adapter = adapters_of(model)[0]
    with torch.no_grad():  # a trained gate (it starts uniform)
        adapter.gate.to_experts.weight.copy_(torch.randn(adapter.gate.to_experts.weight.shape) * 0.5)
    rows = train.select(torch.nonzero(train.domains == 1).squeeze(1)[:50])
    weights = adapter.routing(rows.domains, model.embedding(rows.codes).flatten(1))
    assert weights.shape == (50, 6) and torch.allclose(weights.sum(1), torch.ones(50))
    assert (weights - weights[0]).abs().max() > 1e-3
    model.eval()
    assert merge_adapters(model) == 0  # per-row routing cannot be folded per domain
    with torch.no_grad():
        unmerged = model(rows.codes, rows.domains)
    torch.testing.assert_close(predict_logits(model, rows), unmerged)


def test_gate_variants_train_end_to_end_and_keep_their_settings():
    spec, train, valid, _ = toy_parts()
    for variant in (dict(gate_init="own-domain"), dict(gate_learning_rate=0.05), dict(gate_input="features")):
        set_seed(0)
        model = build_model("wdl", spec)
        report = train_approach(model, train, valid, spec.domain_names, ApproachConfig("moe-mlora", **variant), FAST)
        assert report.phases[-1].phase == "phase3-gate"
        assert report.valid.wauc == pytest.approx(report.phases[-1].restored_valid_score, abs=1e-6)


def test_the_gate_learning_rate_reaches_phase3_only():
    spec, train, valid, _ = toy_parts()
    histories = {}
    for lr in (None, 1e-9):
        set_seed(0)
        model = build_model("wdl", spec)
        report = train_approach(model, train, valid, spec.domain_names,
                                ApproachConfig("moe-mlora", gate_learning_rate=lr), FAST)
        histories[lr] = report.phases
    scores = {lr: [(r.train_loss, r.valid_score) for r in phases[1].history] for lr, phases in histories.items()}
    assert scores[None] == scores[1e-9]  # phase 2 untouched
    tiny = histories[1e-9][2].history
    assert max(r.valid_score for r in tiny) - min(r.valid_score for r in tiny) < 1e-4  # the gate barely moves


def test_authors_schedule_trains_every_parameter_but_the_fixed_gate_embedding_in_every_phase():
    spec, model, train, _, _ = adapted()
    gate_embedding = adapters_of(model)[0].gate.domain_embedding.weight
    for phase in SCHEDULES["moe-mlora/authors-code"]:
        trainable = enter_phase(model, phase)
        assert adapters_of(model)[0].mode is AdapterMode.MIXTURE
        assert {id(p) for p in trainable} == {id(p) for p in model.parameters()} - {id(gate_embedding)}
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        optimizer = ModelAdam(model, trainable, 1e-2)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(train.codes[:512], train.domains[:512]),
                                                                    train.labels[:512])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for name, parameter in model.named_parameters():
            changed = not torch.equal(before[name], parameter.detach())
            assert changed == ("domain_embedding" not in name), name


def test_authors_schedule_end_to_end_changes_everything_and_never_keeps_a_worse_epoch():
    spec, train, valid, _ = toy_parts()
    set_seed(0)
    model = build_model("wdl", spec)
    attach_adapters(model, ApproachConfig("moe-mlora", schedule="authors-code").adapter_config("wdl", 3, FAST.seed))
    start = copy.deepcopy(model.state_dict())
    set_seed(0)
    model = build_model("wdl", spec)
    report = train_approach(model, train, valid, spec.domain_names, ApproachConfig("moe-mlora", schedule="authors-code"),
                            FAST)
    assert [p.phase for p in report.phases] == [p.name.value for p in SCHEDULES["moe-mlora/authors-code"]]
    for name, value in model.state_dict().items():
        if name.endswith("prior"):
            continue
        assert torch.equal(value, start[name]) == ("domain_embedding" in name), name
    scores = [r.valid_score for p in report.phases for r in p.history]
    assert scores == sorted(scores)  # every non-improving epoch undone; the best carries across phases
    assert report.phases[1].note.startswith("one pass per expert") and len(report.phases[1].best_epochs) == 3
    assert evaluate(model, valid, spec.domain_names).wauc == pytest.approx(report.phases[-1].best_valid_score, abs=1e-9)


@pytest.mark.parametrize("k, gate_input", [(1, "domain"), (3, "domain"), (2, "features")])
def test_a_uniform_gate_gives_every_expert_the_same_weight_when_phase3_starts(k, gate_input):
    spec, train, valid, _ = toy_parts()
    set_seed(0)
    model = build_model("deepfm", spec)
    report = train_approach(model, train, valid, spec.domain_names,
                            ApproachConfig("moe-mlora", k, gate_input=gate_input), FAST)
    n_experts = k * spec.n_domains
    assert report.gate_start.shape == (spec.n_domains, n_experts)
    assert (report.gate_start - 1 / n_experts).abs().max() < 1e-6


def test_a_random_gate_is_torchs_default_start_and_not_uniform():
    spec, train, valid, _ = toy_parts()
    set_seed(0)
    model = build_model("wdl", spec)
    report = train_approach(model, train, valid, spec.domain_names, ApproachConfig("moe-mlora", gate_init="random"), FAST)
    assert (report.gate_start - 1 / spec.n_domains).abs().max() > 1e-2


def test_the_authors_gate_is_drawn_as_keras_draws_it_and_starts_nearly_domain_blind():
    spec, _, _, _ = toy_parts()
    model = build_model("wdl", spec)
    config = ApproachConfig("moe-mlora", 2, schedule="authors-code").adapter_config("wdl", spec.n_domains, 1)
    (adapter,) = attach_adapters(model, config)
    embedding, dense = adapter.gate.domain_embedding.weight, adapter.gate.to_experts
    assert embedding.abs().max() <= 0.05 and torch.equal(dense.bias, torch.zeros_like(dense.bias))
    limit = (6 / sum(dense.weight.shape)) ** 0.5  # Glorot uniform
    assert dense.weight.abs().max() <= limit and dense.weight.abs().max() > limit / 2
    weights = adapter.gate(torch.arange(spec.n_domains))
    assert (weights - 1 / weights.shape[1]).abs().max() < 0.02  # tiny inputs: close to uniform for every domain


def test_diagnostics_report_the_gate_and_the_three_paths():
    spec, train, valid, test = toy_parts()
    set_seed(0)
    model = build_model("wdl", spec)
    train_approach(model, train, valid, spec.domain_names, ApproachConfig("moe-mlora", 2), FAST)
    diagnostics = moe_diagnostics(model, valid, test, spec.domain_names)
    assert diagnostics.uniform_own_weight == pytest.approx(2 / 6)
    assert all(0 <= g.own_weight <= 1 and 0 <= g.entropy <= diagnostics.uniform_entropy + 1e-6 for g in diagnostics.gate)
    assert set(diagnostics.paths) == {"backbone", "own-experts", "mixture"}
    assert diagnostics.paths["mixture"]["test"] == evaluate(model, test, spec.domain_names).wauc
    set_adapter_mode(model, AdapterMode.BACKBONE)
    assert diagnostics.paths["backbone"]["valid"] == evaluate(model, valid, spec.domain_names).wauc


def test_variant_options_apply_to_moe_mlora_only():
    with pytest.raises(ConfigError, match="--gate-init applies to moe-mlora only"):
        ApproachConfig("mlora", gate_init="own-domain")
    with pytest.raises(ConfigError, match="gate init must be one of uniform, random, own-domain"):
        ApproachConfig("moe-mlora", gate_init="bogus")
    with pytest.raises(ConfigError, match="authors-code schedule has no gate phase"):
        ApproachConfig("moe-mlora", schedule="authors-code", gate_learning_rate=0.1)
    assert ApproachConfig("moe-mlora", gate_init="own-domain", gate_learning_rate=0.01).arm == \
        "moe-mlora[gate-init=own-domain,gate-lr=0.01]"
