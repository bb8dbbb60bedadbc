import pytest
import torch

from moe_mlora.errors import ConfigError
from moe_mlora.features import FeatureSpec
from moe_mlora.models import MODELS, build_model
from moe_mlora.models.registry import PAPER_MODELS

SPEC = FeatureSpec(("user_id", "item_id", "domain"), (40, 30, 3), ("a", "b", "c"))


def random_batch(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.stack([torch.randint(0, c, (n,), generator=g) for c in SPEC.cardinalities], dim=1)
    return codes, codes[:, 2]


def test_all_eight_paper_models_are_registered_in_its_order_then_the_others():
    assert list(MODELS)[:8] == list(PAPER_MODELS) == ["wdl", "nfm", "autoint", "pnn", "dcn", "fibinet", "deepfm", "xdeepfm"]
    assert list(MODELS)[8:] == ["dnn"]


@pytest.mark.parametrize("name", list(MODELS))
def test_model_outputs_one_logit_per_row(name):
    codes, domains = random_batch()
    assert build_model(name, SPEC)(codes, domains).shape == (64,)


WIDE_SPEC = FeatureSpec(("u", "i", "age", "job", "genre", "domain"), (40, 30, 7, 21, 18, 3), ("a", "b", "c"))


@pytest.mark.parametrize("name", list(MODELS))
def test_gradients_reach_every_parameter(name):
    # Six fields so FiBiNET's SENET bottleneck (fields // 3) has two units, not one that can start dead.
    torch.manual_seed(0)
    model = build_model(name, WIDE_SPEC, dnn_dropout=0.0)
    g = torch.Generator().manual_seed(0)
    codes = torch.stack([torch.randint(0, c, (256,), generator=g) for c in WIDE_SPEC.cardinalities], dim=1)
    model(codes, codes[:, -1]).sum().backward()
    for param_name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_has_one_shared_tower_with_the_paper_widths(name):
    model = build_model(name, SPEC)
    assert [out for _, out in model.tower.layer_shapes] == [256, 128, 64]


def test_models_with_a_linear_term_follow_the_reference_implementations():
    with_linear = {name for name, cls in MODELS.items() if cls.uses_linear_term}
    assert with_linear == set(MODELS) - {"pnn", "dnn"}  # DeepCTR's PNN has no linear logit; DNN is the deep part alone


@pytest.mark.parametrize("name", sorted(set(MODELS) - {"pnn", "dnn"}))
def test_the_linear_term_adds_its_weight_to_the_logit_of_exactly_the_rows_with_that_value(name):
    torch.manual_seed(0)
    model = build_model(name, SPEC).eval()
    codes, domains = random_batch()
    before = model(codes, domains)
    user = int(codes[0, 0])
    with torch.no_grad():
        model.linear.weights.table.weight[user] += 1.5  # field 0 (user_id) starts at row 0
    change = model(codes, domains) - before
    has_user = codes[:, 0] == user
    torch.testing.assert_close(change[has_user], torch.full((int(has_user.sum()),), 1.5), rtol=0, atol=1e-5)
    assert torch.equal(change[~has_user], torch.zeros(int((~has_user).sum())))


def test_pnn_has_no_linear_term():
    assert build_model("pnn", SPEC).linear is None


def test_dcn_cross_kernels_are_under_their_own_l2():
    from moe_mlora.training.optim import ModelAdam

    model = build_model("dcn", SPEC, l2_cross=3e-5)
    groups = {tuple(id(p) for p in group["params"]): group["weight_decay"]
              for group in ModelAdam(model, list(model.parameters()), 1e-3).adam.param_groups}
    assert groups[(id(model.cross.kernels),)] == pytest.approx(6e-5)  # weight decay 2*lambda = lambda*||w||^2
    embeddings = (id(model.embedding.table.weight), id(model.linear.weights.table.weight))
    assert groups[embeddings] == pytest.approx(2e-5)
    assert id(model.cross.biases) in next(k for k, v in groups.items() if v == 0.0)


def test_dcn_l2_pulls_the_cross_kernels_toward_zero_when_the_data_says_nothing():
    from moe_mlora.training.optim import ModelAdam

    model = build_model("dcn", SPEC)
    optimizer = ModelAdam(model, list(model.parameters()), 1e-3)
    before = model.cross.kernels.detach().clone()
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)  # no data gradient: only the penalty acts
    optimizer.step()
    after = model.cross.kernels.detach()
    assert (after.abs() < before.abs()).all()


def test_fibinet_has_two_bilinear_layers_one_per_input():
    model = build_model("fibinet", SPEC)
    assert model.bilinear is not model.senet_bilinear
    assert model.bilinear.weights.data_ptr() != model.senet_bilinear.weights.data_ptr()


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(ConfigError, match="unknown model 'lr'; choose one of wdl, nfm, autoint"):
        build_model("lr", SPEC)


def test_unknown_model_option_is_rejected():
    with pytest.raises(ConfigError, match="unknown model option"):
        build_model("deepfm", SPEC, hidden_units=(3,))


def test_config_overrides_reach_the_layers():
    model = build_model("xdeepfm", SPEC, cin_layer_sizes=(8, 6), dnn_hidden=(16, 8))
    assert model.cin.output_dim == 4 + 6
    assert [out for _, out in model.tower.layer_shapes] == [16, 8]
