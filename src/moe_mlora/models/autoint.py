"""AutoInt+ (Song et al., 2019), as DeepCTR's AutoInt: a linear term, plus one output layer over stacked
multi-head self-attention across fields and, in parallel, a DNN over the same embeddings."""

import torch
from torch import nn

from moe_mlora.layers.interactions import InteractingLayer
from moe_mlora.models.base import CTRModel, output_layer


class AutoInt(CTRModel):
    name = "autoint"
    uses_linear_term = True

    def __init__(self, spec, config) -> None:
        super().__init__(spec, config)
        layers = []
        in_dim = config.embedding_dim
        for _ in range(config.attention_layers):
            layer = InteractingLayer(in_dim, config.attention_dim, config.attention_heads, config.attention_residual)
            layers.append(layer)
            in_dim = layer.out_dim
        self.attention = nn.Sequential(*layers)
        self.tower = self.make_tower(self.flat_dim)
        self.head = output_layer(spec.n_embedded * in_dim + self.tower.out_dim)

    def logit_inputs(self, embeddings: torch.Tensor, routing_ids: torch.Tensor, dense=None):
        attended = self.attention(embeddings).flatten(1)
        deep = self.tower(self.with_dense(embeddings.flatten(1), dense), routing_ids)
        return torch.cat([attended, deep], dim=1), []
