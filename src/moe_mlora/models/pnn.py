"""PNN (Qu et al., 2016), as DeepCTR's PNN with use_inner=True, use_outter=False: a DNN over
[embeddings, pairwise inner products]; no linear term (the reference has none)."""

import torch

from moe_mlora.layers.interactions import InnerProduct
from moe_mlora.models.base import CTRModel, output_layer


class PNN(CTRModel):
    name = "pnn"

    def __init__(self, spec, config) -> None:
        super().__init__(spec, config)
        self.inner_product = InnerProduct(spec.n_embedded)
        n_pairs = spec.n_embedded * (spec.n_embedded - 1) // 2
        self.tower = self.make_tower(self.flat_dim + n_pairs)
        self.head = output_layer(self.tower.out_dim)

    def logit_inputs(self, embeddings: torch.Tensor, routing_ids: torch.Tensor, dense=None):
        product_layer = torch.cat([embeddings.flatten(1), self.inner_product(embeddings)], dim=1)
        return self.tower(self.with_dense(product_layer, dense), routing_ids), []
