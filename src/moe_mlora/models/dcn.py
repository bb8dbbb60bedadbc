"""DCN (Wang et al., 2017): a cross network in parallel with a DNN, combined by one output layer."""

import torch

from moe_mlora.layers.interactions import CrossNetwork
from moe_mlora.models.base import CTRModel, output_layer


class DCN(CTRModel):
    name = "dcn"

    def __init__(self, spec, config) -> None:
        super().__init__(spec, config)
        self.cross = CrossNetwork(self.flat_dim, config.cross_layers)
        self.tower = self.make_tower(self.flat_dim)
        self.head = output_layer(self.flat_dim + self.tower.out_dim)

    def logit_terms(self, embeddings: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        flat = embeddings.flatten(1)
        return self.head(torch.cat([self.cross(flat), self.tower(flat, domains)], dim=1)).squeeze(1)
