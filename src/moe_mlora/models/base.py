"""What every backbone shares: the field embeddings, an optional linear term, the MLP tower and a bias.

A backbone only says how its interaction layer turns embeddings into the tower's input, the output layer's
input and extra logit terms (`logit_inputs`). The tower is built in one place (moe_mlora.layers.Tower) so
adapters attach to any model; the output is assembled in one place, so a method's per-domain output unit
(moe_mlora.layers.OutputPart) reaches every backbone's whole logit.
"""

from __future__ import annotations

import math

from dataclasses import asdict, dataclass, fields
from typing import ClassVar

import torch
from torch import nn

from moe_mlora.errors import ConfigError
from moe_mlora.features import FeatureSpec
from moe_mlora.layers import BagEmbedding, FieldEmbedding, LinearTerm, ModelPart, OutputPart, Tower
from moe_mlora.layers.domain_part import codes_of_this_forward, domain_parts


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters; defaults are the paper's published configs (DeepCTR-style)."""

    embedding_dim: int = 8
    embedding_init_std: float = 0.01
    dnn_hidden: tuple[int, ...] = (256, 128, 64)
    dnn_dropout: float = 0.5
    l2_embedding: float = 1e-5  # on embedding and linear-term weights
    # AutoInt
    attention_layers: int = 3
    attention_dim: int = 8
    attention_heads: int = 4
    attention_residual: bool = True
    # DCN
    cross_layers: int = 2
    l2_cross: float = 1e-5  # on the cross network's kernels (DeepCTR's l2_reg_cross)
    # FiBiNET
    senet_reduction_ratio: int = 3
    # xDeepFM
    cin_layer_sizes: tuple[int, ...] = (128, 128)
    cin_split_half: bool = True
    cin_activation: str = "relu"
    # NFM
    bi_dropout: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "dnn_hidden", tuple(self.dnn_hidden))
        object.__setattr__(self, "cin_layer_sizes", tuple(self.cin_layer_sizes))
        self.check()

    def check(self) -> None:
        """A one-line ConfigError for a value no model can be built or trained with, before any data is read."""
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"model_config.{name} must be {rule}, got {getattr(self, name)!r}")

        for name in ("embedding_dim", "attention_layers", "attention_dim", "attention_heads", "senet_reduction_ratio"):
            if getattr(self, name) < 1:
                raise bad(name, "at least 1")
        if self.cross_layers < 0:
            raise bad("cross_layers", "0 or more")
        for name in ("dnn_dropout", "bi_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise bad(name, "in [0, 1)")
        for name in ("embedding_init_std", "l2_embedding", "l2_cross"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise bad(name, "a finite number, 0 or more")
        if not self.dnn_hidden or any(width < 1 for width in self.dnn_hidden):
            raise bad("dnn_hidden", "a non-empty list of layer widths, each at least 1 (the tower the methods adapt)")
        if any(width < 1 for width in self.cin_layer_sizes):
            raise bad("cin_layer_sizes", "layer sizes of at least 1")
        if self.cin_activation not in ("relu", "linear", "identity"):
            raise bad("cin_activation", "relu | linear | identity")

    @classmethod
    def from_overrides(cls, **overrides) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown model option(s) {unknown}; known: {', '.join(sorted(known))}")
        return cls(**overrides)

    def to_dict(self) -> dict:
        return asdict(self)


class CTRModel(nn.Module):
    """Embeddings -> interaction -> tower -> logit. Subclasses set `name`, build `self.head` (the output layer)
    and implement `logit_inputs`."""

    name: ClassVar[str]
    uses_linear_term: ClassVar[bool] = False
    # The logit terms a backbone adds beside its output layer (DeepFM's FM term, xDeepFM's CIN), in the order
    # logit_inputs returns them; the linear term, where there is one, comes after them.
    extra_terms: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: FeatureSpec, config: ModelConfig) -> None:
        super().__init__()
        self.spec, self.config = spec, config
        self.embedding = FieldEmbedding(spec, config.embedding_dim, config.embedding_init_std)
        self.linear = LinearTerm(spec, config.embedding_init_std) if self.uses_linear_term else None
        self.bias = nn.Parameter(torch.zeros(1))
        self.bags = BagEmbedding(spec, config.embedding_dim, config.embedding_init_std) if spec.n_bags else None
        self.domain_part: ModelPart | None = None  # a method's model-level part (moe_mlora.layers.domain_part)
        self.output_part: OutputPart | None = None  # a method's per-domain output units

    def make_tower(self, in_dim: int) -> Tower:
        """The DNN over `in_dim` inputs plus the dense features (DeepCTR's combined_dnn_input)."""
        return Tower(in_dim + self.spec.n_dense, self.config.dnn_hidden, self.config.dnn_dropout)

    @property
    def flat_dim(self) -> int:
        return self.spec.n_embedded * self.config.embedding_dim

    @staticmethod
    def with_dense(inputs: torch.Tensor, dense: torch.Tensor | None) -> torch.Tensor:
        """A DNN's input: the backbone's own, then the dense features, where there are any."""
        return inputs if dense is None else torch.cat([inputs, dense], dim=1)

    @property
    def logit_term_names(self) -> tuple[str, ...]:
        """Every logit term beside the output layer, in the order an OutputPart receives them."""
        return (*self.extra_terms, *(("linear",) if self.uses_linear_term else ()))

    def logit_inputs(self, embeddings: torch.Tensor, routing_ids: torch.Tensor,
                     dense: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The output layer's input (batch, head's in) and the backbone's extra logit terms (each (batch,), as
        `extra_terms` names them); `embeddings` holds every embedded field (categorical, then pooled bags),
        `dense` the numeric features (None without them)."""
        raise NotImplementedError

    def logit_terms(self, embeddings: torch.Tensor, routing_ids: torch.Tensor, dense: torch.Tensor | None) -> torch.Tensor:
        """The shared output: the output layer on its input, plus the extra terms, shape (batch,)."""
        features, terms = self.logit_inputs(embeddings, routing_ids, dense)
        logit = self.head(features).squeeze(1)
        for term in terms:
            logit = term + logit
        return logit

    def forward(self, codes: torch.Tensor, routing_ids: torch.Tensor, dense: torch.Tensor | None = None,
                bags: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, fields) codes, (batch,) domain ids, and the numeric and multi-valued features where the
        spec has them -> (batch,) logits."""
        with codes_of_this_forward(codes):  # a method's parts may read the rows' codes (PPNet's personal prior)
            return self._forward(codes, routing_ids, dense, bags)

    def _forward(self, codes: torch.Tensor, routing_ids: torch.Tensor, dense: torch.Tensor | None,
                 bags: torch.Tensor | None) -> torch.Tensor:
        if (dense is None) != (self.spec.n_dense == 0) or (bags is None) != (self.bags is None):
            raise ConfigError(f"{self.name} takes dense inputs: {self.spec.n_dense}, bags: {self.spec.n_bags}; "
                              f"got {'none' if dense is None else dense.shape[1]} and {'none' if bags is None else bags.shape[1]}")
        part = self.domain_part
        if part is not None and part.scores_rows:  # a part that scores rows itself (Separate: a model per domain)
            part.check_routing_ids(routing_ids)
            return part.score(self._backbone_forward, codes, routing_ids, dense, bags)
        return self._backbone_forward(codes, routing_ids, dense, bags)

    def _backbone_forward(self, codes: torch.Tensor, routing_ids: torch.Tensor, dense: torch.Tensor | None,
                          bags: torch.Tensor | None) -> torch.Tensor:
        embeddings = self.embedding(codes)
        if self.bags is not None:
            embeddings = torch.cat([embeddings, self.bags(bags)], dim=1)
        part = None if self.domain_part is not None and self.domain_part.scores_rows else self.domain_part
        if part is not None:
            part.check_routing_ids(routing_ids)
            embeddings = part.embeddings(embeddings, routing_ids)
        if self.output_part is None:
            logit = self.logit_terms(embeddings, routing_ids, dense) + self.bias
            if self.linear is not None:
                logit = logit + self.linear(codes, dense, bags)
        else:  # each row's own domain's output unit over everything the shared output would sum
            self.output_part.check_routing_ids(routing_ids)
            features, terms = self.logit_inputs(embeddings, routing_ids, dense)
            if self.linear is not None:
                terms = [*terms, self.linear(codes, dense, bags)]
            logit = self.output_part.forward_output(self.head, features, terms, routing_ids) + self.bias
        if part is not None:
            extra = part.extra_logit(embeddings, routing_ids)
            if extra is not None:
                logit = logit + extra
        return logit

    def field_tables(self) -> list[nn.Parameter]:
        """The tables with one row per categorical value: the field embeddings and the linear term's weights."""
        return [self.embedding.table.weight] + ([self.linear.weights.table.weight] if self.linear is not None else [])

    def l2_groups(self) -> list[tuple[float, list[nn.Parameter]]]:
        """(lambda, weights) pairs under an L2 penalty lambda * ||w||^2: the embeddings and the linear term,
        as in the paper's configs; a backbone adds its own (DCN's cross kernels)."""
        params = [self.embedding.table.weight]
        if self.bags is not None:
            params.append(self.bags.table.weight)
        if self.linear is not None:
            params += self.linear.tables()
        return [(self.config.l2_embedding, params), *(group for _, part in domain_parts(self) for group in part.l2_groups())]


def output_layer(in_dim: int) -> nn.Linear:
    """Tower (and parallel branches) to one logit; the model's own bias is added separately."""
    layer = nn.Linear(in_dim, 1, bias=False)
    nn.init.xavier_normal_(layer.weight)
    return layer
