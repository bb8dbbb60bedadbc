"""DNN: the flattened embeddings (and dense features) through the MLP tower, no interaction layer; the
backbone the multi-domain literature publishes its methods on (Scenario-Wise Rec's models are MLPs)."""

import torch

from moe_mlora.models.base import CTRModel, output_layer


class DNN(CTRModel):
    name = "dnn"

    def __init__(self, spec, config) -> None:
        super().__init__(spec, config)
        self.tower = self.make_tower(self.flat_dim)
        self.head = output_layer(self.tower.out_dim)

    def logit_terms(self, embeddings: torch.Tensor, routing_ids: torch.Tensor, dense=None) -> torch.Tensor:
        return self.head(self.tower(self.with_dense(embeddings.flatten(1), dense), routing_ids)).squeeze(1)
