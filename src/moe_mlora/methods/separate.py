"""Separate: one backbone per domain, nothing shared (the baseline every multi-domain paper reports, e.g.
Scenario-Wise Rec's and STAR's tables; Sheng et al., CIKM 2021, Sec. 5).

Domain 0's rows go through the model's own backbone and domain d's (d >= 1) through a copy of the backbone of
its own, drawn afresh from a seed of the run's, so the model holds exactly n_domains backbones and every row
sees only its domain's weights (embeddings, interaction layer, tower, output). The L2 penalty of the paper's
configs covers every copy's embeddings as it covers the backbone's. In training the rows are grouped by domain,
each group through its own model (a step costs about one backbone); at inference every model scores every row
and each row keeps its own (no data-dependent shapes, so the graph exports; about n_domains backbones).

Deviation from training n models one by one: the models train together, in one joint phase on mixed batches
(each model's gradient comes from its own domain's rows alone, weighted by their share of the batch, which Adam
mostly normalises away), and one early stop on the validation score of all domains ends them all, where separate
runs would stop each domain at its own best epoch. No add-domain rule (a new domain would need a model of its
own, trained from scratch: train one) and no backbone fallback for unknown domains.
"""

from __future__ import annotations

import torch
from torch import nn

from moe_mlora.layers.domain_part import ModelPart
from moe_mlora.methods.blocks import grouped_by_domain, seeded
from moe_mlora.methods.method import Method


class DomainModels(ModelPart):
    """The backbones of domains 1 .. n-1 (domain 0 uses the model's own)."""

    scores_rows = True

    def __init__(self, n_domains: int, build) -> None:
        super().__init__(n_domains)
        self.models = nn.ModuleList(build() for _ in range(n_domains - 1))

    def score(self, backbone_forward, codes, domains, dense, bags) -> torch.Tensor:
        scorers = [backbone_forward, *self.models]
        if not self.training:  # every model on every row, then each row's own: exportable
            every = torch.stack([scorer(codes, domains, dense, bags) for scorer in scorers], dim=1)
            return every.gather(1, domains.view(-1, 1)).squeeze(1)
        order, present, sizes, back = grouped_by_domain(domains, self.n_domains)
        pieces = [tensor.index_select(0, order).split(sizes) if tensor is not None else [None] * len(sizes)
                  for tensor in (codes, domains, dense, bags)]
        logits = [scorers[domain](*(piece[i] for piece in pieces)) for i, domain in enumerate(present)]
        return torch.cat(logits).index_select(0, back)

    def l2_groups(self) -> list[tuple[float, list[nn.Parameter]]]:
        return [group for model in self.models for group in model.l2_groups()]


def attach(model, n_domains: int, run_seed: int, approach=None) -> None:
    with seeded(run_seed):
        model.domain_part = DomainModels(n_domains, lambda: type(model)(model.spec, model.config))


METHOD = Method("separate", "Separate", "one model per domain (the baseline of STAR's and Scenario-Wise Rec's tables)",
                attach=attach)
