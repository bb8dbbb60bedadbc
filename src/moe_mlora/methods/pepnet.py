"""EPNet, PPNet and PEPNet (Chang et al., KDD 2023), with a domain's embedding as the scenario prior.

* EPNet: the embedded fields are rescaled element-wise by a gate unit (gamma * sigmoid of a two-layer
  network, gamma = 2, about 1 at the start) that sees the domain's embedding and the embedded fields with
  their gradient stopped; every interaction of the backbone sees the rescaled embeddings.
* PPNet: after every tower layer's activation, the hidden units are rescaled by a gate unit of their own
  that sees the personalised prior (the domain's embedding and the tower's input, gradient stopped).
* PEPNet: both.

The paper's PPNet prior is the user, item and author id embeddings; here it is the tower's input, which
holds every embedded field (the user and item ids among them) for every backbone whose tower reads the
flattened embeddings, that is all but NFM (whose tower reads the bi-interaction pool).

Where the reference code (Scenario-Wise Rec, models/multi_domain/ppnet.py and epnet.py) differs: its PPNet
builds one whole gated tower per domain and feeds each tower the gate's input, whose non-id embeddings are
detached, so those embeddings receive no gradient at all; its EPNet gates only the non-scenario fields.
"""

from __future__ import annotations

import torch
from torch import nn

from moe_mlora.layers.domain_part import ModelPart, TowerPart
from moe_mlora.methods.blocks import GateNU, attach_tower_parts, seeded
from moe_mlora.methods.method import Method


class EmbeddingGate(ModelPart):
    """EPNet: embeddings * GateNU([domain embedding, stop_gradient(embeddings)])."""

    def __init__(self, n_domains: int, embedding_dim: int, flat_dim: int) -> None:
        super().__init__(n_domains)
        self.domain_embedding = nn.Embedding(n_domains, embedding_dim)
        self.gate = GateNU(embedding_dim + flat_dim, flat_dim)

    def embeddings(self, embeddings: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        flat = embeddings.flatten(1)
        scale = self.gate(torch.cat([self.domain_embedding(domains), flat.detach()], dim=1))
        return (flat * scale).view_as(embeddings)


class GatedTower(TowerPart):
    """PPNet: ReLU(layer_l(h)) * GateNU_l([domain embedding, stop_gradient(tower input)]) per layer."""

    def __init__(self, n_domains: int, embedding_dim: int, layer_shapes: list[tuple[int, int]]) -> None:
        super().__init__(n_domains)
        self.domain_embedding = nn.Embedding(n_domains, embedding_dim)
        prior = embedding_dim + layer_shapes[0][0]
        self.gates = nn.ModuleList(GateNU(prior, out_dim) for _, out_dim in layer_shapes)

    def forward_tower(self, tower, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        self.check_routing_ids(routing_ids)
        prior = torch.cat([self.domain_embedding(routing_ids), inputs.detach()], dim=1)
        hidden = inputs
        for index, gate in enumerate(self.gates):
            hidden = torch.relu(tower.layer(index, hidden)) * gate(prior)
        return hidden


def attach_epnet(model, n_domains: int, run_seed: int, approach=None) -> None:
    with seeded(run_seed):
        model.domain_part = EmbeddingGate(n_domains, model.config.embedding_dim, model.flat_dim)


def attach_ppnet(model, n_domains: int, run_seed: int, approach=None) -> None:
    attach_tower_parts(model, run_seed, lambda tower: GatedTower(n_domains, model.config.embedding_dim,
                                                                  tower.layer_shapes))


def attach_pepnet(model, n_domains: int, run_seed: int, approach=None) -> None:
    attach_epnet(model, n_domains, run_seed)
    attach_ppnet(model, n_domains, run_seed + 1)


EPNET = Method("epnet", "EPNet", "Chang et al., KDD 2023 (PEPNet's EPNet); Scenario-Wise Rec's EPNet", attach=attach_epnet,
               grows=True)
PPNET = Method("ppnet", "PPNet", "Chang et al., KDD 2023 (PEPNet's PPNet); Scenario-Wise Rec's PPNet", attach=attach_ppnet,
               grows=True)
PEPNET = Method("pepnet", "PEPNet", "Chang et al., KDD 2023", attach=attach_pepnet, grows=True)
