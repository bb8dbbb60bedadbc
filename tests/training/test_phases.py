"""The MoE-MLoRA phases freeze what they must, train what they must, and the approaches run end to end."""

import copy

import numpy as np
import pytest
import torch

from helpers import toy_parts
from moe_mlora.adapters import AdapterConfig, adapters_of, attach_adapters, backbone_parameters
from moe_mlora.models import build_model
from moe_mlora.training.loop import TrainConfig, evaluate, make_optimizer, set_seed
from moe_mlora.training.phases import (
    MOE_PHASES, ApproachConfig, enter_phase, expert_view, train_approach, train_experts,
)

FAST = TrainConfig(learning_rate=1e-2, max_epochs=8, patience=2, batch_size=256, progress=False)


def snapshot(params):
    return [p.detach().clone() for p in params]


def one_step(model, codes, routing_ids, labels, trainable):
    optimizer = make_optimizer(model, trainable, FAST)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(codes, routing_ids), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


@pytest.fixture
def moe_model():
    spec, train, _, _ = toy_parts()
    torch.manual_seed(0)
    model = build_model("deepfm", spec)
    attach_adapters(model, AdapterConfig("moe-mlora", spec.n_domains, 2, rank=4))
    for p in adapters_of(model)[0].experts.up:  # non-zero B so every expert matters to the output
        torch.nn.init.normal_(p, std=0.05)
    return model, train


def split_params(model):
    adapter = adapters_of(model)[0]
    return backbone_parameters(model), adapter.expert_parameters(), adapter.gate_parameters()


def test_phase1_trains_backbone_and_leaves_adapters_bitwise_unchanged(moe_model):
    model, train = moe_model
    backbone, experts, gate = split_params(model)
    before = snapshot(backbone), snapshot(experts), snapshot(gate)
    one_step(model, train.codes[:512], train.domains[:512], train.labels[:512], enter_phase(model, MOE_PHASES[0]))
    assert all(torch.equal(a, b) for a, b in zip(before[1] + before[2], snapshot(experts) + snapshot(gate)))
    assert all(not torch.equal(a, b) for a, b in zip(before[0], snapshot(backbone)))


def test_phase2_trains_only_the_batch_experts(moe_model):
    model, train = moe_model
    backbone, experts, gate = split_params(model)
    before = snapshot(backbone), snapshot(experts), snapshot(gate)
    trainable = enter_phase(model, MOE_PHASES[1])
    rows, _ = expert_view(train, adapters_of(model)[0])
    chosen = torch.nonzero(rows.domains == 4).squeeze(1)[:256]  # expert 4 = second expert of domain 1
    one_step(model, rows.codes[chosen], rows.domains[chosen], rows.labels[chosen], trainable)
    assert all(torch.equal(a, b) for a, b in zip(before[0] + before[2], snapshot(backbone) + snapshot(gate)))
    for old, new in zip(before[1], snapshot(experts)):
        assert not torch.equal(old[4], new[4])
        assert torch.equal(old[[0, 1, 2, 3, 5]], new[[0, 1, 2, 3, 5]])


def test_phase3_trains_only_the_gate(moe_model):
    model, train = moe_model
    backbone, experts, gate = split_params(model)
    before = snapshot(backbone), snapshot(experts), snapshot(gate)
    one_step(model, train.codes[:512], train.domains[:512], train.labels[:512], enter_phase(model, MOE_PHASES[2]))
    assert all(torch.equal(a, b) for a, b in zip(before[0] + before[1], snapshot(backbone) + snapshot(experts)))
    assert all(not torch.equal(a, b) for a, b in zip(before[2], snapshot(gate)))


def test_full_moe_schedule_keeps_each_phase_result_frozen_afterwards():
    spec, train, valid, _ = toy_parts()
    set_seed(0)
    model = build_model("deepfm", spec)
    seen = {}

    def on_epoch(phase, record):
        if phase.startswith("phase2") and "backbone" not in seen:
            seen["backbone"] = snapshot(backbone_parameters(model))
        if phase.startswith("phase3") and "experts" not in seen:
            seen["experts"] = snapshot(adapters_of(model)[0].expert_parameters())

    report = train_approach(model, train, valid, spec.domain_names, ApproachConfig("moe-mlora", 2), FAST, on_epoch)
    assert [p.phase for p in report.phases] == list(MOE_PHASES)
    assert all(torch.equal(a, b) for a, b in zip(seen["backbone"], snapshot(backbone_parameters(model))))
    assert all(torch.equal(a, b) for a, b in zip(seen["experts"], snapshot(adapters_of(model)[0].expert_parameters())))
    counts = [(p.trainable_parameters, p.total_parameters) for p in report.phases]
    assert counts[0][0] > counts[1][0] > counts[2][0] > 0 and len({total for _, total in counts}) == 1


@pytest.mark.parametrize("approach", ["base", "mlora", "moe-mlora"])
def test_every_approach_learns_the_toy_problem(approach):
    spec, train, valid, test = toy_parts()
    set_seed(0)
    model = build_model("wdl", spec)
    train_approach(model, train, valid, spec.domain_names, ApproachConfig(approach), FAST)
    assert evaluate(model, test, spec.domain_names).wauc > 0.6


def test_phase2_never_leaves_an_expert_worse_than_the_backbone_on_validation():
    spec, train, valid, _ = toy_parts()
    set_seed(0)
    model = build_model("wdl", spec)
    train_approach(model, train, valid, spec.domain_names, ApproachConfig("base"), FAST)
    attach_adapters(model, AdapterConfig("moe-mlora", spec.n_domains, rank=4))
    enter_phase(model, MOE_PHASES[0])
    backbone_wauc = evaluate(model, valid, spec.domain_names).wauc
    result = train_experts(model, train, valid, spec.domain_names, FAST)
    assert result.best_valid_wauc >= backbone_wauc - 1e-9


def test_sequential_phase2_trains_every_expert_one_after_another():
    spec, train, valid, _ = toy_parts()
    set_seed(0)
    model = build_model("wdl", spec)
    train_approach(model, train, valid, spec.domain_names, ApproachConfig("base"), FAST)
    attach_adapters(model, AdapterConfig("moe-mlora", spec.n_domains, 2, rank=4))
    enter_phase(model, MOE_PHASES[0])
    backbone_wauc = evaluate(model, valid, spec.domain_names).wauc
    result = train_experts(model, train, valid, spec.domain_names, FAST, schedule="sequential")
    assert result.note.startswith("sequential") and result.best_valid_wauc >= backbone_wauc - 1e-9
    # Six experts, each with its own run of epochs restarting at 1.
    assert sum(record.epoch == 1 for record in result.history) == 6


def test_parallel_and_sequential_phase2_reach_indistinguishable_wauc_on_movielens(real_data_dir):
    """Acceptance check: from one trained ML-100K backbone, three seeds of each schedule; Welch's t-test."""
    from scipy.stats import ttest_ind

    from moe_mlora.data import DatasetConfig, prepare_dataset

    dataset = prepare_dataset(DatasetConfig("movielens-100k", "gender"), real_data_dir)
    train, valid, test = dataset.part("train"), dataset.part("valid"), dataset.part("test")
    names = dataset.spec.domain_names
    config = TrainConfig(max_epochs=10, progress=False)
    set_seed(0)
    backbone = build_model("deepfm", dataset.spec)
    train_approach(backbone, train, valid, names, ApproachConfig("base"), config)
    attach_adapters(backbone, AdapterConfig("moe-mlora", len(names), rank=8))
    scores = {"parallel": [], "sequential": []}
    for seed in (1, 2, 3):
        for schedule in scores:
            model = copy.deepcopy(backbone)
            train_experts(model, train, valid, names, TrainConfig(max_epochs=10, progress=False, seed=seed),
                          schedule=schedule)
            enter_phase(model, MOE_PHASES[1])
            rows, _ = expert_view(test, adapters_of(model)[0])  # each test row through its domain's expert
            scores[schedule].append(evaluate(model, rows, tuple(f"e{i}" for i in range(len(names))), 8192).wauc)
    print("phase 2 expert test WAUC by schedule:", scores)
    assert ttest_ind(scores["parallel"], scores["sequential"], equal_var=False).pvalue > 0.05
    assert abs(np.mean(scores["parallel"]) - np.mean(scores["sequential"])) < 0.005


def test_moe_phase1_reproduces_base_training_bitwise():
    spec, train, valid, _ = toy_parts()
    states = {}
    for approach in ("base", "moe-mlora"):
        set_seed(3)
        model = build_model("nfm", spec)
        seen = {}

        def on_epoch(phase, record, model=model, seen=seen):
            if phase.startswith("phase2") and not seen:
                seen.update({k: v.clone() for k, v in model.state_dict().items() if ".adapter." not in f".{k}"})

        train_approach(model, train, valid, spec.domain_names, ApproachConfig(approach), FAST, on_epoch)
        states[approach] = seen or {k: v for k, v in model.state_dict().items()}
    assert states["base"].keys() == states["moe-mlora"].keys()
    assert all(torch.equal(states["base"][k], states["moe-mlora"][k]) for k in states["base"])


def test_stacked_expert_adam_matches_torch_adam_per_expert():
    torch.manual_seed(0)
    stacked = torch.nn.Parameter(torch.randn(3, 4, 2))
    singles = [torch.nn.Parameter(stacked.detach()[e].clone()) for e in range(3)]
    from moe_mlora.training.phases import StackedExpertAdam
    ours = StackedExpertAdam([stacked], 3, lr=0.01)
    theirs = [torch.optim.Adam([p], lr=0.01) for p in singles]
    schedule = [[True, True, False], [True, False, False], [False, True, True], [True, True, True]]
    for present in schedule:
        grads = torch.randn(3, 4, 2)
        stacked.grad = grads * torch.tensor(present, dtype=torch.float32).view(3, 1, 1)
        ours.step(torch.tensor(present))
        for e, on in enumerate(present):
            if on:
                singles[e].grad = grads[e].clone()
                theirs[e].step()
    for e in range(3):
        assert torch.allclose(stacked.detach()[e], singles[e].detach(), atol=1e-6)
