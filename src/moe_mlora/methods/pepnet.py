"""EPNet, PPNet and PEPNet (Chang et al., KDD 2023), with a domain's embedding as the scenario prior.

* EPNet: the embedded fields are rescaled element-wise by a gate unit (gamma * sigmoid of a two-layer
  network, gamma = 2, about 1 at the start) that sees the domain's embedding and the embedded fields with
  their gradient stopped; every interaction of the backbone sees the rescaled embeddings.
* PPNet: after every tower layer's activation, the hidden units are rescaled by a gate unit of their own
  that sees the personalised prior (the domain's embedding and the tower's input, gradient stopped).
* PEPNet: both.

The PPNet prior is the setting `prior` (`--ppnet-prior`, `--pepnet-prior`):
* `fields`: the paper's personal prior. Trainable embeddings of its own for the fields `prior_fields` (default
  user and item ids; the paper uses user, item and author ids, FuxiCTR a separate gate embedding of the prior
  fields), started like the field embeddings (N(0, embedding_init_std)), beside the domain's embedding. They are
  the gate's alone, so the gate's gradient reaches them; the rows' codes come from the model's forward
  (moe_mlora.layers.domain_part.row_codes).
* `tower-input` (the default, as the shipped records ran): the domain's embedding and the tower's input with its
  gradient stopped, which holds every embedded field for every backbone whose tower reads the flattened
  embeddings (all but NFM, whose tower reads the bi-interaction pool): a domain-conditioned gated tower, not a
  personalised one.

Where the reference code (Scenario-Wise Rec, models/multi_domain/ppnet.py and epnet.py) differs: its PPNet
builds one whole gated tower per domain and feeds each tower the gate's input, whose non-id embeddings are
detached, so those embeddings receive no gradient at all; its EPNet gates only the non-scenario fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from moe_mlora.errors import ConfigError
from moe_mlora.layers.domain_part import ModelPart, TowerPart, row_codes
from moe_mlora.methods.blocks import GateNU, attach_tower_parts, seeded
from moe_mlora.methods.method import Method
from moe_mlora.settings import setting

PRIORS = ("tower-input", "fields")


@dataclass(frozen=True)
class PPNetSettings:
    prior: str = setting("tower-input", help="PPNet's gate prior: tower-input (the domain's embedding and the tower's input, gradient stopped) | fields (the paper's personal prior: trainable embeddings of --*-prior-fields of its own).")
    prior_fields: tuple[str, ...] = setting(("user_id", "item_id"), help="The fields whose ids the personal prior embeds (prior fields).")

    def __post_init__(self) -> None:
        if self.prior not in PRIORS:
            raise ConfigError(f"ppnet prior must be one of {', '.join(PRIORS)}, got '{self.prior}'")
        if self.prior == "fields" and not self.prior_fields:
            raise ConfigError("ppnet prior fields: name at least one field for the personal prior")


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
    """PPNet: ReLU(layer_l(h)) * GateNU_l(prior) per layer; the prior is [domain embedding, stop_gradient(tower
    input)], or with `prior_fields` (field index, cardinality) [domain embedding, the fields' own prior embeddings]."""

    def __init__(self, n_domains: int, embedding_dim: int, layer_shapes: list[tuple[int, int]],
                 prior_fields: list[tuple[int, int]] = (), init_std: float = 0.01) -> None:
        super().__init__(n_domains)
        self.domain_embedding = nn.Embedding(n_domains, embedding_dim)
        self.prior_fields = [index for index, _ in prior_fields]
        self.prior_embeddings = nn.ModuleList(nn.Embedding(cardinality, embedding_dim) for _, cardinality in prior_fields)
        for table in self.prior_embeddings:
            nn.init.normal_(table.weight, std=init_std)  # as the field embeddings start
        prior = embedding_dim + (embedding_dim * len(prior_fields) if prior_fields else layer_shapes[0][0])
        self.gates = nn.ModuleList(GateNU(prior, out_dim) for _, out_dim in layer_shapes)

    def forward_tower(self, tower, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        self.check_routing_ids(routing_ids)
        if self.prior_fields:
            codes = row_codes()
            personal = [table(codes[:, index]) for index, table in zip(self.prior_fields, self.prior_embeddings)]
            prior = torch.cat([self.domain_embedding(routing_ids), *personal], dim=1)
        else:
            prior = torch.cat([self.domain_embedding(routing_ids), inputs.detach()], dim=1)
        hidden = inputs
        for index, gate in enumerate(self.gates):
            hidden = torch.relu(tower.layer(index, hidden)) * gate(prior)
        return hidden


def attach_epnet(model, n_domains: int, run_seed: int, approach=None) -> None:
    with seeded(run_seed):
        model.domain_part = EmbeddingGate(n_domains, model.config.embedding_dim, model.flat_dim)


def prior_fields_of(model, settings: PPNetSettings) -> list[tuple[int, int]]:
    """(field index, cardinality) of each prior field; an unknown field is a one-line error naming the fields."""
    if settings.prior != "fields":
        return []
    names = model.spec.field_names
    unknown = [name for name in settings.prior_fields if name not in names]
    if unknown:
        raise ConfigError(f"ppnet prior field(s) {unknown} are not fields of this data; its fields: {', '.join(names)}")
    return [(names.index(name), model.spec.cardinalities[names.index(name)]) for name in settings.prior_fields]


def attach_ppnet(model, n_domains: int, run_seed: int, approach=None) -> None:
    settings = PPNetSettings(**(getattr(approach, "method_settings", None) or {}))  # PPNet's and PEPNet's alike
    fields = prior_fields_of(model, settings)
    attach_tower_parts(model, run_seed, lambda tower: GatedTower(n_domains, model.config.embedding_dim,
                                                                  tower.layer_shapes, fields,
                                                                  model.config.embedding_init_std))


def attach_pepnet(model, n_domains: int, run_seed: int, approach=None) -> None:
    attach_epnet(model, n_domains, run_seed)
    attach_ppnet(model, n_domains, run_seed + 1, approach)


EPNET = Method("epnet", "EPNet", "Chang et al., KDD 2023 (PEPNet's EPNet); Scenario-Wise Rec's EPNet", attach=attach_epnet,
               grows=True)
PPNET = Method("ppnet", "PPNet", "Chang et al., KDD 2023 (PEPNet's PPNet); Scenario-Wise Rec's PPNet", attach=attach_ppnet,
               grows=True, settings=PPNetSettings)
PEPNET = Method("pepnet", "PEPNet", "Chang et al., KDD 2023", attach=attach_pepnet, grows=True, settings=PPNetSettings)
