import torch

from moe_mlora.features import FeatureSpec
from moe_mlora.layers import FieldEmbedding, LinearTerm, Tower


def test_fields_share_one_table_at_their_offsets():
    spec = FeatureSpec(("a", "b"), (3, 5), ("x",))
    embedding = FieldEmbedding(spec, 4)
    codes = torch.tensor([[2, 0], [0, 4]])
    out = embedding(codes)
    assert torch.equal(out[0, 1], embedding.table.weight[3]) and torch.equal(out[1, 1], embedding.table.weight[7])
    assert embedding.table.num_embeddings == 8


def test_linear_term_sums_one_weight_per_field():
    spec = FeatureSpec(("a", "b"), (3, 5), ("x",))
    linear = LinearTerm(spec)
    w = linear.weights.table.weight.squeeze(1)
    assert torch.allclose(linear(torch.tensor([[1, 2]])), (w[1] + w[3 + 2]).unsqueeze(0))


def test_tower_without_adapter_is_relu_mlp():
    tower = Tower(6, (5, 4), dropout=0.0)
    x = torch.randn(3, 6)
    expected = torch.relu(tower.linears[1](torch.relu(tower.linears[0](x))))
    assert torch.allclose(tower(x, torch.zeros(3, dtype=torch.long)), expected)
    assert tower.layer_shapes == [(6, 5), (5, 4)]
