"""FiBiNET (Huang et al., 2019): SENET re-weighting, bilinear interactions of both the raw and re-weighted
embeddings (one shared 'interaction'-type bilinear layer), a DNN over both, plus the linear term."""

import torch

from moe_mlora.layers.interactions import BilinearInteraction, SqueezeExcitation
from moe_mlora.models.base import CTRModel, output_layer


class FiBiNET(CTRModel):
    name = "fibinet"
    uses_linear_term = True

    def __init__(self, spec, config) -> None:
        super().__init__(spec, config)
        self.senet = SqueezeExcitation(spec.n_fields, config.senet_reduction_ratio)
        self.bilinear = BilinearInteraction(spec.n_fields, config.embedding_dim)
        n_pairs = spec.n_fields * (spec.n_fields - 1) // 2
        self.tower = self.make_tower(2 * n_pairs * config.embedding_dim)
        self.head = output_layer(self.tower.out_dim)

    def logit_terms(self, embeddings: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        reweighted = self.bilinear(self.senet(embeddings)).flatten(1)
        plain = self.bilinear(embeddings).flatten(1)
        return self.head(self.tower(torch.cat([reweighted, plain], dim=1), domains)).squeeze(1)
