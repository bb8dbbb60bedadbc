"""xDeepFM (Lian et al., 2018): linear term + Compressed Interaction Network + DNN."""

import torch

from moe_mlora.layers.interactions import CompressedInteractionNetwork
from moe_mlora.models.base import CTRModel, output_layer


class XDeepFM(CTRModel):
    name = "xdeepfm"
    uses_linear_term = True

    def __init__(self, spec, config) -> None:
        super().__init__(spec, config)
        self.cin = CompressedInteractionNetwork(
            spec.n_fields, config.cin_layer_sizes, config.cin_split_half, config.cin_activation)
        self.cin_head = output_layer(self.cin.output_dim)
        self.tower = self.make_tower(self.flat_dim)
        self.head = output_layer(self.tower.out_dim)

    def logit_terms(self, embeddings: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        cin_logit = self.cin_head(self.cin(embeddings)).squeeze(1)
        return cin_logit + self.head(self.tower(embeddings.flatten(1), domains)).squeeze(1)
