import pytest
import torch

from moe_mlora.errors import ConfigError
from moe_mlora.features import FeatureSpec
from moe_mlora.models import MODELS, build_model

SPEC = FeatureSpec(("user_id", "item_id", "domain"), (40, 30, 3), ("a", "b", "c"))


def random_batch(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.stack([torch.randint(0, c, (n,), generator=g) for c in SPEC.cardinalities], dim=1)
    return codes, codes[:, 2]


def test_all_eight_paper_models_are_registered():
    assert list(MODELS) == ["wdl", "nfm", "autoint", "pnn", "dcn", "fibinet", "deepfm", "xdeepfm"]


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


def test_models_with_a_linear_term_follow_their_papers():
    with_linear = {name for name, cls in MODELS.items() if cls.uses_linear_term}
    assert with_linear == {"wdl", "nfm", "fibinet", "deepfm", "xdeepfm"}


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
