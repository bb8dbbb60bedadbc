"""DCN (Wang et al., 2017), as DeepCTR's DCN: a linear term, plus one output layer over a cross network
(vector kernels under L2 `l2_cross`) and, in parallel, a DNN over the same flattened embeddings."""

import torch

from moe_mlora.layers.interactions import CrossNetwork
from moe_mlora.models.base import CTRModel, output_layer


class DCN(CTRModel):
    name = "dcn"
    uses_linear_term = True

    def __init__(self, spec, config) -> None:
        super().__init__(spec, config)
        self.cross = CrossNetwork(self.flat_dim + spec.n_dense, config.cross_layers)  # dense too, as DeepCTR
        self.tower = self.make_tower(self.flat_dim)
        self.head = output_layer(self.flat_dim + spec.n_dense + self.tower.out_dim)

    def logit_inputs(self, embeddings: torch.Tensor, routing_ids: torch.Tensor, dense=None):
        flat = self.with_dense(embeddings.flatten(1), dense)
        return torch.cat([self.cross(flat), self.tower(flat, routing_ids)], dim=1), []

    def l2_groups(self):
        return [*super().l2_groups(), (self.config.l2_cross, [self.cross.kernels])]
