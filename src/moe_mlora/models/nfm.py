"""NFM (He & Chua, 2017), as DeepCTR's NFM: a linear term plus a DNN over the bi-interaction pooling of the
embeddings (bi_dropout 0)."""

import torch

from moe_mlora.layers.dropout import FastDropout
from moe_mlora.layers.interactions import BiInteractionPooling
from moe_mlora.models.base import CTRModel, output_layer


class NFM(CTRModel):
    name = "nfm"
    uses_linear_term = True

    def __init__(self, spec, config) -> None:
        super().__init__(spec, config)
        self.bi_interaction = BiInteractionPooling()
        self.bi_dropout = FastDropout(config.bi_dropout)
        self.tower = self.make_tower(config.embedding_dim)
        self.head = output_layer(self.tower.out_dim)

    def logit_inputs(self, embeddings: torch.Tensor, routing_ids: torch.Tensor, dense=None):
        pooled = self.bi_dropout(self.bi_interaction(embeddings))
        return self.tower(self.with_dense(pooled, dense), routing_ids), []
