"""FiBiNET (Huang et al., 2019), as DeepCTR's FiBiNET: a linear term, plus a DNN over the bilinear
interactions ('interaction' type) of the SENET-reweighted embeddings and, through a second bilinear layer
of its own, of the raw embeddings."""

import torch

from moe_mlora.layers.interactions import BilinearInteraction, SqueezeExcitation
from moe_mlora.models.base import CTRModel, output_layer


class FiBiNET(CTRModel):
    name = "fibinet"
    uses_linear_term = True

    def __init__(self, spec, config) -> None:
        super().__init__(spec, config)
        self.senet = SqueezeExcitation(spec.n_embedded, config.senet_reduction_ratio)
        self.senet_bilinear = BilinearInteraction(spec.n_embedded, config.embedding_dim)
        self.bilinear = BilinearInteraction(spec.n_embedded, config.embedding_dim)
        n_pairs = spec.n_embedded * (spec.n_embedded - 1) // 2
        self.tower = self.make_tower(2 * n_pairs * config.embedding_dim)
        self.head = output_layer(self.tower.out_dim)

    def logit_inputs(self, embeddings: torch.Tensor, routing_ids: torch.Tensor, dense=None):
        reweighted = self.senet_bilinear(self.senet(embeddings)).flatten(1)
        plain = self.bilinear(embeddings).flatten(1)
        return self.tower(self.with_dense(torch.cat([reweighted, plain], dim=1), dense), routing_ids), []
