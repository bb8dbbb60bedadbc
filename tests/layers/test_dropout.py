import pytest
import torch

from moe_mlora.layers.dropout import FastDropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_keeps_one_minus_p_and_scales_to_preserve_the_mean(p):
    torch.manual_seed(0)
    dropout = FastDropout(p).train()
    out = dropout(torch.ones(1000, 1000))
    kept = (out != 0).float().mean().item()
    assert kept == pytest.approx(1 - p, abs=0.003)
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)
    assert torch.allclose(out[out != 0], torch.full_like(out[out != 0], 1 / (1 - p)), rtol=1e-4)


def test_is_identity_in_eval_mode_and_for_zero_p():
    x = torch.randn(5, 7)
    assert torch.equal(FastDropout(0.5).eval()(x), x)
    assert torch.equal(FastDropout(0.0).train()(x), x)


def test_masks_follow_the_torch_seed_and_vary_between_calls():
    dropout = FastDropout(0.5).train()
    x = torch.ones(64, 33)  # an element count that is not a multiple of 4
    torch.manual_seed(1)
    first, second = dropout(x), dropout(x)
    torch.manual_seed(1)
    assert torch.equal(dropout(x), first) and not torch.equal(first, second)


def test_gradient_flows_only_through_kept_elements():
    torch.manual_seed(0)
    x = torch.ones(100, 10, requires_grad=True)
    out = FastDropout(0.5).train()(x)
    out.sum().backward()
    assert torch.equal(x.grad, out.detach())
