"""DeepFM (Guo et al., 2017), as DeepCTR's DeepFM: a linear term, the FM's second-order term and a DNN,
all over the same embeddings."""

import torch

from moe_mlora.layers.interactions import FactorizationMachine
from moe_mlora.models.base import CTRModel, output_layer


class DeepFM(CTRModel):
    name = "deepfm"
    uses_linear_term = True
    extra_terms = ("fm",)

    def __init__(self, spec, config) -> None:
        super().__init__(spec, config)
        self.fm = FactorizationMachine()
        self.tower = self.make_tower(self.flat_dim)
        self.head = output_layer(self.tower.out_dim)

    def logit_inputs(self, embeddings: torch.Tensor, routing_ids: torch.Tensor, dense=None):
        second_order = self.fm(embeddings)  # first, as before: the graph's order fixes how gradients accumulate
        deep = self.tower(self.with_dense(embeddings.flatten(1), dense), routing_ids)
        return deep, [second_order]
