"""MoE-MLoRA's selection rule (greedy or trained) and the handoff from phase 2 to phase 3."""

import pytest
import torch

from helpers import toy_parts
from moe_mlora.adapters import AdapterMode, adapters_of, set_adapter_mode
from moe_mlora.models import build_model
from moe_mlora.training.approaches import ApproachConfig, choose_gate_start, train_approach
from moe_mlora.training.config import TrainConfig, set_seed
from moe_mlora.training.evaluation import evaluate
from moe_mlora.training.phase import PhaseName

CONFIG = TrainConfig(learning_rate=1e-3, max_epochs=3, patience=1, batch_size=512, progress=False, seed=5)


def trained_model(approach: ApproachConfig, config: TrainConfig = CONFIG):
    spec, train, valid, _ = toy_parts(n_rows=3000)
    set_seed(config.seed)
    model = build_model("deepfm", spec, dnn_hidden=(16, 8))
    report = train_approach(model, train, valid, spec.domain_names, approach, config)
    return model, report


def test_under_the_papers_selection_every_expert_and_the_gate_train_and_no_phase_keeps_its_start():
    model, report = trained_model(ApproachConfig("moe-mlora", 2, selection="trained"))
    experts, gate = (next(p for p in report.phases if p.phase == name.value)
                     for name in (PhaseName.EXPERTS, PhaseName.GATE))
    assert min(experts.best_epochs) >= 1 and gate.best_epoch >= 1
    adapter = adapters_of(model)[0]
    for layer, up in enumerate(adapter.experts.up):  # B starts at zero: each expert's slice moved
        assert all(up[e].abs().sum() > 0 for e in range(up.shape[0])), f"an expert of layer {layer} never trained"
    assert adapter.gate.to_experts.weight.abs().sum() > 0  # the gate's output layer starts at zero


def test_greedy_selection_may_keep_a_start_that_no_trained_epoch_beats():
    # A learning rate so high that every trained epoch of phases 2-3 is worse than the start: greedy keeps it.
    from dataclasses import replace

    _, report = trained_model(ApproachConfig("moe-mlora", selection="greedy"), replace(CONFIG, learning_rate=5.0))
    gate = next(p for p in report.phases if p.phase == PhaseName.GATE.value)
    experts = next(p for p in report.phases if p.phase == PhaseName.EXPERTS.value)
    assert 0 in experts.best_epochs or gate.best_epoch == 0
    _, trained = trained_model(ApproachConfig("moe-mlora", selection="trained"), replace(CONFIG, learning_rate=5.0))
    assert all(min(p.best_epochs) >= 1 for p in trained.phases)


@pytest.mark.parametrize("experts_trained", [True, False], ids=["phase-2-model-better", "tie-keeps-uniform"])
def test_the_handoff_starts_the_gate_from_the_better_of_the_phase2_model_and_the_uniform_mixture(experts_trained):
    spec, train, valid, _ = toy_parts(n_rows=3000)
    set_seed(1)
    model = build_model("deepfm", spec, dnn_hidden=(16, 8))
    approach = ApproachConfig("moe-mlora", selection="trained")
    from moe_mlora.methods import METHODS

    METHODS["moe-mlora"].plug_into(model, spec.n_domains, 1, approach)
    if experts_trained:  # the oracle's case: each domain's expert fitted to its own domain, strongly
        from dataclasses import replace

        from moe_mlora.training.approaches import expert_view
        from moe_mlora.training.loop import fit

        phases = approach.schedule_phases
        config = replace(CONFIG, learning_rate=1e-2, max_epochs=4)
        fit(model, phases[0], train, valid, spec.domain_names, config)
        adapter_config = adapters_of(model)[0].config
        fit(model, phases[1], expert_view(train, adapter_config), expert_view(valid, adapter_config),
            spec.domain_names, config)
    set_adapter_mode(model, AdapterMode.MIXTURE)
    uniform = evaluate(model, valid, spec.domain_names).wauc
    set_adapter_mode(model, AdapterMode.OWN_EXPERTS)
    own = evaluate(model, valid, spec.domain_names).wauc
    if experts_trained:
        assert own > uniform, "the constructed phase-2 model must beat the uniform mixture for this test to mean much"
    note = choose_gate_start(model, valid, spec.domain_names, CONFIG)
    set_adapter_mode(model, AdapterMode.MIXTURE)
    started = evaluate(model, valid, spec.domain_names).wauc
    if own > uniform:
        assert "the phase-2 model" in note and started == pytest.approx(own, abs=2e-3)  # own routing leaks 1e-4
    else:
        assert "the uniform mixture" in note and started == uniform
        assert torch.count_nonzero(adapters_of(model)[0].gate.prior) == 0
