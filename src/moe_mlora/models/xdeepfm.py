"""xDeepFM (Lian et al., 2018), as DeepCTR's xDeepFM: a linear term, a Compressed Interaction Network
(128, 128, split_half, ReLU) to one logit, and a DNN to another."""

import torch

from moe_mlora.layers.interactions import CompressedInteractionNetwork
from moe_mlora.models.base import CTRModel, output_layer


class XDeepFM(CTRModel):
    name = "xdeepfm"
    uses_linear_term = True
    extra_terms = ("cin",)

    def __init__(self, spec, config) -> None:
        super().__init__(spec, config)
        self.cin = CompressedInteractionNetwork(
            spec.n_embedded, config.cin_layer_sizes, config.cin_split_half, config.cin_activation)
        self.cin_head = output_layer(self.cin.output_dim)
        self.tower = self.make_tower(self.flat_dim)
        self.head = output_layer(self.tower.out_dim)

    def logit_inputs(self, embeddings: torch.Tensor, routing_ids: torch.Tensor, dense=None):
        cin_logit = self.cin_head(self.cin(embeddings)).squeeze(1)
        deep = self.tower(self.with_dense(embeddings.flatten(1), dense), routing_ids)
        return deep, [cin_logit]
