"""Small generated problems for tests that need a model to learn something."""

import numpy as np


def toy_parts(n_rows: int = 4000, n_domains: int = 3, seed: int = 0):
    """A small learnable multi-domain problem as (spec, train, valid, test) tensor parts."""
    import torch

    from moe_mlora.batches import TensorPart
    from moe_mlora.features import FeatureSpec

    rng = np.random.default_rng(seed)
    n_users, n_items = 60, 40
    users, items = rng.integers(0, n_users, n_rows), rng.integers(0, n_items, n_rows)
    domains = rng.integers(0, n_domains, n_rows)
    u, v = rng.normal(size=(n_users, 4)), rng.normal(size=(n_items, 4))
    taste = rng.normal(size=(n_domains, 4))
    logits = (u[users] * v[items]).sum(1) + (taste[domains] * v[items]).sum(1)
    labels = (rng.random(n_rows) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    codes = torch.as_tensor(np.stack([users, items, domains], axis=1))
    spec = FeatureSpec(("user_id", "item_id", "domain"), (n_users, n_items, n_domains),
                       tuple(f"d{i}" for i in range(n_domains)))
    cut1, cut2 = int(0.6 * n_rows), int(0.8 * n_rows)
    part = lambda s: TensorPart(codes[s], torch.as_tensor(domains[s]), torch.as_tensor(labels[s]))  # noqa: E731
    return spec, part(slice(0, cut1)), part(slice(cut1, cut2)), part(slice(cut2, None))


def with_random_adapters(model, config):
    """Non-zero adapters (a fresh one is an exact no-op), so merged and unmerged paths can disagree."""
    import torch

    from moe_mlora.adapters import adapters_of, attach_adapters

    attach_adapters(model, config)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for adapter in adapters_of(model):
            for parameter in adapter.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=g) * 0.3)
    return model
