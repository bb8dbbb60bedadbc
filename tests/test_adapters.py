import pytest
import torch

from moe_mlora.adapters import (
    AdapterConfig, AdapterMode, adapters_of, attach_adapters, load_adapters, merge_adapters, merged_adapters,
    save_adapters, set_adapter_mode, unmerge_adapters,
)
from helpers import with_random_adapters
from moe_mlora.errors import ConfigError
from moe_mlora.features import FeatureSpec
from moe_mlora.models import MODELS, build_model

SPEC = FeatureSpec(("user_id", "item_id", "domain"), (40, 30, 3), ("a", "b", "c"))


def batch(n=128, seed=0, spec=SPEC):
    g = torch.Generator().manual_seed(seed)
    codes = torch.stack([torch.randint(0, c, (n,), generator=g) for c in spec.cardinalities], dim=1)
    return codes, codes[:, -1]


@pytest.mark.parametrize("kind, k", [("mlora", 1), ("moe-mlora", 1), ("moe-mlora", 3)])
@pytest.mark.parametrize("name", list(MODELS))
def test_fresh_adapter_leaves_every_backbone_unchanged(name, kind, k):
    torch.manual_seed(0)
    model = build_model(name, SPEC).eval()
    codes, domains = batch()
    before = model(codes, domains)
    attach_adapters(model, AdapterConfig(kind, 3, k, lora_reduce=16))
    assert torch.equal(model(codes, domains), before)


def test_mlora_with_one_domain_and_zero_adapters_equals_base_exactly():
    spec = FeatureSpec(("user_id", "item_id", "domain"), (40, 30, 1), ("all",))
    torch.manual_seed(0)
    base = build_model("deepfm", spec).eval()
    mlora = build_model("deepfm", spec).eval()
    mlora.load_state_dict(base.state_dict())
    attach_adapters(mlora, AdapterConfig("mlora", 1))
    codes, domains = batch(spec=spec)
    assert torch.equal(mlora(codes, domains), base(codes, domains))


def test_ranks_follow_layer_width_over_reduce_or_a_fixed_rank():
    model = build_model("deepfm", SPEC)
    (adapter,) = attach_adapters(model, AdapterConfig("mlora", 3, lora_reduce=32))
    assert adapter.experts.ranks == [8, 4, 2]
    (adapter,) = attach_adapters(model, AdapterConfig("moe-mlora", 3, 2, rank=5))
    assert adapter.experts.ranks == [5, 5, 5] and adapter.experts.down[0].shape == (6, 24, 5)


def test_adapter_math_matches_per_row_formula():
    torch.manual_seed(0)
    model = build_model("wdl", SPEC, dnn_dropout=0.0).eval()
    (adapter,) = attach_adapters(model, AdapterConfig("moe-mlora", 3, 2, rank=3))
    for p in adapter.experts.parameters():
        torch.nn.init.normal_(p)
    x = torch.randn(5, 24)
    domains = torch.tensor([0, 1, 2, 1, 0])
    weights = adapter.gate(domains)
    got = adapter.experts(0, x, weights)  # the correction the stacked experts add beside layer 0
    A, B, c = adapter.experts.down[0], adapter.experts.up[0], adapter.experts.bias[0]
    expected = torch.stack([sum(weights[r, e] * (x[r] @ A[e] @ B[e] + c[e]) for e in range(6)) for r in range(5)])
    assert torch.allclose(got, expected, atol=1e-5)


def test_gate_weights_are_a_distribution_over_all_experts():
    model = build_model("deepfm", SPEC)
    (adapter,) = attach_adapters(model, AdapterConfig("moe-mlora", 3, 4))
    weights = adapter.routing(torch.tensor([0, 1, 2, 2]))
    assert weights.shape == (4, 12)
    assert torch.allclose(weights.sum(dim=1), torch.ones(4)) and (weights > 0).all()


def test_expert_mode_excludes_every_other_expert():
    torch.manual_seed(0)
    model = build_model("deepfm", SPEC).eval()
    (adapter,) = attach_adapters(model, AdapterConfig("moe-mlora", 3, 2))
    for p in adapter.experts.parameters():
        torch.nn.init.normal_(p, std=0.1)
    set_adapter_mode(model, AdapterMode.EXPERT)
    codes, _ = batch()
    expert_ids = torch.full((len(codes),), 4)
    before = model(codes, expert_ids)
    with torch.no_grad():
        for p in adapter.experts.parameters():
            p[[0, 1, 2, 3, 5]] += 100.0
    assert torch.equal(model(codes, expert_ids), before)
    with torch.no_grad():
        adapter.experts.up[0][4] += 1.0
    assert not torch.equal(model(codes, expert_ids), before)


def test_backbone_mode_excludes_all_adapters():
    torch.manual_seed(0)
    model = build_model("dcn", SPEC).eval()
    codes, domains = batch()
    before = model(codes, domains)
    (adapter,) = attach_adapters(model, AdapterConfig("moe-mlora", 3))
    for p in adapter.parameters():
        torch.nn.init.normal_(p)
    set_adapter_mode(model, AdapterMode.BACKBONE)
    assert torch.equal(model(codes, domains), before)


def test_unseen_domain_is_a_clear_error():
    model = build_model("deepfm", SPEC)
    attach_adapters(model, AdapterConfig("mlora", 3))
    codes, _ = batch()
    with pytest.raises(ConfigError, match="domain id 7 is unknown: the adapter was built for 3 domains"):
        model(codes, torch.full((len(codes),), 7))


def test_mlora_has_no_gate_for_mixture_mode():
    model = build_model("deepfm", SPEC)
    attach_adapters(model, AdapterConfig("mlora", 3))
    with pytest.raises(ConfigError, match="needs a MoE-MLoRA adapter"):
        set_adapter_mode(model, AdapterMode.MIXTURE)


def test_adapters_save_apart_and_load_onto_the_backbone(tmp_path):
    torch.manual_seed(0)
    model = build_model("nfm", SPEC).eval()
    (adapter,) = attach_adapters(model, AdapterConfig("moe-mlora", 3, 2))
    for p in adapter.parameters():
        torch.nn.init.normal_(p, std=0.1)
    codes, domains = batch()
    expected = model(codes, domains)
    save_adapters(model, tmp_path)
    fresh = build_model("nfm", SPEC).eval()
    fresh.load_state_dict({k: v for k, v in model.state_dict().items() if ".adapter." not in k})
    load_adapters(fresh, tmp_path)
    assert torch.equal(fresh(codes, domains), expected)
    from safetensors.torch import load_file
    keys = load_file(str(tmp_path / "adapter.safetensors")).keys()
    assert keys and all(k.startswith(("0.experts.", "0.gate.")) for k in keys)


def test_one_adapter_module_serves_every_backbone():
    for name in MODELS:
        model = build_model(name, SPEC)
        attach_adapters(model, AdapterConfig("mlora", 3))
        assert len(adapters_of(model)) == 1


@pytest.mark.parametrize("kind, k", [("mlora", 1), ("moe-mlora", 1), ("moe-mlora", 3)])
@pytest.mark.parametrize("name", list(MODELS))
def test_inference_with_per_domain_merged_layers_matches_the_two_gemm_path(name, kind, k):
    torch.manual_seed(0)
    # Widths 30/17/6 are not multiples of 4: the merged weights are zero-padded for grouped_mm.
    model = build_model(name, SPEC, dnn_hidden=(30, 17, 6)).eval()
    with_random_adapters(model, AdapterConfig(kind, 3, k, rank=3))
    codes, _ = batch(200)
    domains = codes[:, -1] % 2  # domain 2 absent from the batch: an empty group
    with torch.no_grad():
        reference = model(codes, domains)  # not merged: the two-GEMM path
        with merged_adapters(model):
            assert model.tower.adapter.merged is not None, "the merge did not happen"
            merged = model(codes, domains)
    assert model.tower.adapter.merged is None  # unmerged on leaving
    torch.testing.assert_close(merged, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("flavour", ["fused", "foreach", "plain", "manual"])
def test_evaluation_sees_every_in_place_update(flavour):
    """Whatever changes the weights in place (any optimizer, a manual edit), the next evaluation scores them."""
    from moe_mlora.training.evaluation import predict_logits
    from moe_mlora.batches import TensorPart

    torch.manual_seed(0)
    model = build_model("deepfm", SPEC)
    with_random_adapters(model, AdapterConfig("moe-mlora", 3, 2, lora_reduce=16))
    codes, domains = batch()
    part = TensorPart(codes, domains, torch.zeros(len(codes)))
    before = predict_logits(model, part)
    if flavour == "manual":
        with torch.no_grad():
            model.tower.adapter.gate.to_experts.bias.data[0] += 2.0
            model.tower.linears[0].weight.data.mul_(1.5)
    else:
        options = {"fused": {"fused": True}, "foreach": {"foreach": True}, "plain": {"foreach": False}}[flavour]
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05, **options)
        model.train()
        torch.nn.functional.binary_cross_entropy_with_logits(model(codes, domains), torch.ones(len(codes))).backward()
        optimizer.step()
    after = predict_logits(model, part)
    model.eval()
    with torch.no_grad():
        unmerged = model(codes, domains)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, unmerged, rtol=1e-5, atol=1e-5)


def test_a_merge_is_a_snapshot_that_training_mode_drops():
    torch.manual_seed(0)
    model = build_model("deepfm", SPEC).eval()
    with_random_adapters(model, AdapterConfig("mlora", 3))
    assert merge_adapters(model) == 1 and model.tower.adapter.merged is not None
    model.train()
    assert model.tower.adapter.merged is None
    model.eval()
    merge_adapters(model)
    set_adapter_mode(model, AdapterMode.DOMAIN)
    assert model.tower.adapter.merged is None
    merge_adapters(model)
    unmerge_adapters(model)
    assert model.tower.adapter.merged is None


def test_modes_that_route_by_expert_or_not_at_all_are_never_merged():
    model = build_model("deepfm", SPEC).eval()
    attach_adapters(model, AdapterConfig("moe-mlora", 3, 2))
    for mode in (AdapterMode.EXPERT, AdapterMode.BACKBONE):
        set_adapter_mode(model, mode)
        assert merge_adapters(model) == 0


def test_unseen_domain_is_a_clear_error_at_inference_too():
    model = build_model("deepfm", SPEC).eval()
    attach_adapters(model, AdapterConfig("moe-mlora", 3))
    codes, _ = batch()
    with torch.no_grad(), merged_adapters(model), pytest.raises(ConfigError, match="domain id 5 is unknown"):
        model(codes, torch.full((len(codes),), 5))


@pytest.mark.parametrize("kind, k, mode", [("mlora", 1, AdapterMode.DOMAIN), ("moe-mlora", 1, AdapterMode.MIXTURE),
                                           ("moe-mlora", 2, AdapterMode.MIXTURE),
                                           ("moe-mlora", 2, AdapterMode.OWN_EXPERTS)])
@pytest.mark.parametrize("name", list(MODELS))
def test_merge_domain_gives_a_plain_model_that_scores_the_domain_as_the_adapted_one(name, kind, k, mode):
    from moe_mlora.adapters import merge_domain

    torch.manual_seed(0)
    model = build_model(name, SPEC).eval()
    with_random_adapters(model, AdapterConfig(kind, 3, k, rank=3))
    set_adapter_mode(model, mode)
    codes, _ = batch(120)
    for domain in range(3):
        domains = torch.full((len(codes),), domain)
        plain = merge_domain(model, domain).eval()
        assert adapters_of_or_none(plain) == [] and adapters_of(model)  # the original keeps its adapters
        with torch.no_grad():
            torch.testing.assert_close(plain(codes, domains), model(codes, domains), rtol=1e-5, atol=1e-5)


def adapters_of_or_none(model):
    return [t.adapter for t in model.modules() if hasattr(t, "linears") and t.adapter is not None]


def test_a_feature_gate_cannot_be_merged_per_domain():
    from moe_mlora.adapters import merge_domain

    model = build_model("deepfm", SPEC)
    attach_adapters(model, AdapterConfig("moe-mlora", 3, gate_input="features"))
    with pytest.raises(ConfigError, match="cannot be merged into one plain model per domain"):
        merge_domain(model, 0)
