"""Wide & Deep (Cheng et al., 2016), as DeepCTR's WDL: a linear 'wide' term plus a DNN over the
concatenated embeddings, each to one logit."""

import torch

from moe_mlora.models.base import CTRModel, output_layer


class WDL(CTRModel):
    name = "wdl"
    uses_linear_term = True

    def __init__(self, spec, config) -> None:
        super().__init__(spec, config)
        self.tower = self.make_tower(self.flat_dim)
        self.head = output_layer(self.tower.out_dim)

    def logit_inputs(self, embeddings: torch.Tensor, routing_ids: torch.Tensor, dense=None):
        return self.tower(self.with_dense(embeddings.flatten(1), dense), routing_ids), []
