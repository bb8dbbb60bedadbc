"""STAR (Sheng et al., CIKM 2021): the star topology, partitioned normalisation and the auxiliary network.

* Star topology: every tower layer of domain d uses W_shared * W_d (element-wise) and b_shared + b_d. The
  shared weights are the backbone tower's own; W_d starts at ones and b_d at zeros, so a fresh STAR tower
  computes what the backbone's does on normalised inputs. In training the rows are grouped by domain, one
  product per domain present, so a step costs about one tower; at inference every domain's layer runs on
  every row (one batched product: the graph exports), about n_domains towers.
* Partitioned normalisation (PN) of the tower's input: (gamma * gamma_d) * (x - mu) / sqrt(var + eps)
  + (beta + beta_d). In training, mu and var are the moments of the batch's rows of the row's domain (the
  paper's batch moments, since its batches hold one domain each: `--batch-order by-domain` gives exactly
  that); at inference, each domain's running moments. The setting `normalisation` says what happens to a
  domain with few rows in a mixed batch: `batch` (the default, as the shipped records ran) uses its in-batch
  moments whatever their count, so a domain with one row in the batch has zero variance and that row loses
  every feature (its input becomes beta + beta_d), and the running variance is the biased in-batch one;
  `robust` normalises a domain with fewer than MIN_ROWS rows in the batch by its running moments (as at
  inference) and updates the running variance with the unbiased in-batch variance (as torch's BatchNorm).
* The output: with the setting `output` shared (the default, as the shipped records ran) the star tower feeds the
  backbone's shared output layer; with `output` domain the output layer is star-shaped too, as in the paper's
  FCN (its last layer is a star layer): w_shared * w_d with w_d starting at ones, and a per-domain bias, over
  everything the backbone feeds its output, with a per-domain weight on every other logit term (FM, CIN,
  linear), so on parallel backbones STAR reaches the whole logit.
* The auxiliary network: a two-layer MLP over the domain indicator's embedding and the embedded fields; its
  logit is added to the model's.
* Ablations, as settings: `normalisation none` (no PN), `auxiliary_width 0` (no auxiliary network) and
  `domain_weights offset` (w_d = 1 + v_d with v_d starting at 0, so a weight decay on every weight, as in
  Scenario-Wise Rec's protocol, pulls a domain towards the shared weights instead of pulling w_d towards 0).

Where the reference code (Scenario-Wise Rec, models/multi_domain/star.py) differs from the paper: its
"domain norm" uses the moments of the whole mixed batch, in training and at inference alike (no running
statistics), so a row's score depends on the other rows of its batch; it adds a batch normalisation per
domain after every layer; and its auxiliary network sees the embedded fields (the domain indicator among
them) but no separate domain embedding. Here PN follows the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from moe_mlora.adapters import towers_of
from moe_mlora.layers.domain_part import ModelPart, TowerPart
from moe_mlora.methods.blocks import attach_domain_output, check_output, grouped_by_domain, output_setting, pick, seeded
from moe_mlora.errors import ConfigError
from moe_mlora.methods.method import Method
from moe_mlora.settings import setting

AUXILIARY_WIDTH = 32
NORMALISATIONS = ("batch", "robust", "none")
DOMAIN_WEIGHTS = ("product", "offset")
MIN_ROWS = 2  # `robust`: a domain with fewer rows in a batch is normalised by its running moments


@dataclass(frozen=True)
class StarSettings:
    auxiliary_width: int = setting(AUXILIARY_WIDTH, help="STAR: hidden units of the auxiliary network (0: no auxiliary network, an ablation).")
    normalisation: str = setting("batch", help="STAR: partitioned normalisation in mixed batches: batch (in-batch moments of every domain, however few its rows) | robust (a domain with fewer than 2 rows in the batch uses its running moments; unbiased running variance) | none (no normalisation, an ablation).")
    output: str = output_setting("STAR")
    domain_weights: str = setting("product", help="STAR: a domain's layer weights: product (w_shared * w_d, w_d starting at ones, as the paper: weight decay pulls w_d towards 0) | offset (w_shared * (1 + v_d), v_d starting at 0: weight decay pulls a domain towards the shared weights; an ablation).")

    def __post_init__(self) -> None:
        check_output("star", self.output)
        if self.auxiliary_width < 0:
            raise ConfigError(f"star auxiliary width must be 0 (none) or more, got {self.auxiliary_width}")
        if self.normalisation not in NORMALISATIONS:
            raise ConfigError(f"star normalisation must be one of {', '.join(NORMALISATIONS)}, got '{self.normalisation}'")
        if self.domain_weights not in DOMAIN_WEIGHTS:
            raise ConfigError(f"star domain weights must be one of {', '.join(DOMAIN_WEIGHTS)}, got '{self.domain_weights}'")


class PartitionedNorm(nn.Module):
    def __init__(self, n_domains: int, dim: int, momentum: float = 0.1, eps: float = 1e-5, robust: bool = False) -> None:
        super().__init__()
        self.momentum, self.eps, self.robust = momentum, eps, robust
        self.gamma, self.beta = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))
        self.domain_gamma = nn.Parameter(torch.ones(n_domains, dim))
        self.domain_beta = nn.Parameter(torch.zeros(n_domains, dim))
        self.register_buffer("running_mean", torch.zeros(n_domains, dim))
        self.register_buffer("running_var", torch.ones(n_domains, dim))

    def forward(self, inputs: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        if self.training:
            n = self.running_mean.shape[0]
            counts = torch.bincount(domains, minlength=n).to(inputs.dtype).unsqueeze(1)
            mean = inputs.new_zeros(n, inputs.shape[1]).index_add_(0, domains, inputs) / counts.clamp_min(1)
            centred = inputs - mean.index_select(0, domains)
            var = inputs.new_zeros(n, inputs.shape[1]).index_add_(0, domains, centred * centred) / counts.clamp_min(1)
            with torch.no_grad():
                seen = counts >= MIN_ROWS if self.robust else counts > 0
                unbiased = var.detach() * counts / (counts - 1).clamp_min(1) if self.robust else var.detach()
                update = lambda running, batch: torch.where(seen, running + self.momentum * (batch - running), running)
                self.running_mean.copy_(update(self.running_mean, mean.detach()))
                self.running_var.copy_(update(self.running_var, unbiased))
            normalised = centred / torch.sqrt(var.index_select(0, domains) + self.eps)
            if self.robust:  # a domain with too few rows in this batch: its running moments, as at inference
                few = (counts < MIN_ROWS).squeeze(1).index_select(0, domains).unsqueeze(1)
                normalised = torch.where(few, self.by_running_moments(inputs, domains), normalised)
        else:
            normalised = self.by_running_moments(inputs, domains)
        # index_select, not tensor[domains]: the backward of advanced indexing (an accumulating index_put) sums
        # in a thread-dependent order on the CPU, so STAR did not repeat at 2 threads; index_select's does.
        return ((self.gamma * self.domain_gamma.index_select(0, domains)) * normalised + self.beta
                + self.domain_beta.index_select(0, domains))


    def by_running_moments(self, inputs: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        return ((inputs - self.running_mean.index_select(0, domains))
                / torch.sqrt(self.running_var.index_select(0, domains) + self.eps))


class StarTower(TowerPart):
    def __init__(self, n_domains: int, layer_shapes: list[tuple[int, int]], normalisation: str = "batch",
                 domain_weights: str = "product") -> None:
        super().__init__(n_domains)
        self.norm = (PartitionedNorm(n_domains, layer_shapes[0][0], robust=normalisation == "robust")
                     if normalisation != "none" else None)
        self.offset = domain_weights == "offset"  # w_d = 1 + v_d, v_d stored (starting at 0) instead of w_d
        start = torch.zeros if self.offset else torch.ones
        self.weights = nn.ParameterList(nn.Parameter(start(n_domains, out_dim, in_dim)) for in_dim, out_dim in layer_shapes)
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(n_domains, out_dim)) for _, out_dim in layer_shapes)

    def domain_weight(self, stored: torch.Tensor) -> torch.Tensor:
        return 1 + stored if self.offset else stored

    def forward_tower(self, tower, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        self.check_routing_ids(routing_ids)
        hidden = inputs if self.norm is None else self.norm(inputs, routing_ids)
        if self.training:
            return self.grouped(tower, hidden, routing_ids)
        return self.every_domain(tower, hidden, routing_ids)

    def every_domain(self, tower, hidden: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        """Every domain's layer on every row, one GEMM, then each row's own: no data-dependent shapes, so the
        graph exports (inference, export); it costs about n_domains towers."""
        for linear, weight, bias in zip(tower.linears, self.weights, self.biases):
            combined = (linear.weight * self.domain_weight(weight)).flatten(0, 1)  # (domains * out, in): one GEMM
            every_domain = (hidden @ combined.T).unflatten(1, (weight.shape[0], -1))  # (batch, domains, out)
            out = pick(every_domain, routing_ids) + linear.bias + bias.index_select(0, routing_ids)
            hidden = torch.relu(tower.dropout(out))
        return hidden

    def grouped(self, tower, hidden: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        """The same layers with the rows grouped by domain, one product per domain present (training): a step
        costs about one tower whatever the number of domains (21 occupations: 208 -> see changes.md)."""
        order, present, sizes, back = grouped_by_domain(routing_ids, self.n_domains)
        hidden = hidden.index_select(0, order)
        for linear, weight, bias in zip(tower.linears, self.weights, self.biases):
            chunks = hidden.split(sizes)
            out = torch.cat([chunk @ (linear.weight * self.domain_weight(weight[domain])).T + (linear.bias + bias[domain])
                             for domain, chunk in zip(present, chunks)])
            hidden = torch.relu(tower.dropout(out))
        return hidden.index_select(0, back)


class StarAuxiliary(ModelPart):
    """A logit from the domain indicator's embedding and the embedded fields."""

    def __init__(self, n_domains: int, embedding_dim: int, flat_dim: int, width: int = AUXILIARY_WIDTH) -> None:
        super().__init__(n_domains)
        self.domain_embedding = nn.Embedding(n_domains, embedding_dim)
        self.network = nn.Sequential(nn.Linear(embedding_dim + flat_dim, width), nn.ReLU(), nn.Linear(width, 1))

    def extra_logit(self, embeddings: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        return self.network(torch.cat([self.domain_embedding(domains), embeddings.flatten(1)], dim=1)).squeeze(1)


def attach(model, n_domains: int, run_seed: int, approach=None) -> None:
    settings = METHOD.settings_of(approach)
    with seeded(run_seed):
        for tower in towers_of(model):
            tower.adapter = StarTower(n_domains, tower.layer_shapes, settings.normalisation, settings.domain_weights)
        if settings.auxiliary_width:
            model.domain_part = StarAuxiliary(n_domains, model.config.embedding_dim, model.flat_dim,
                                              settings.auxiliary_width)
        if settings.output == "domain":
            attach_domain_output(model, n_domains, star=True)


METHOD = Method("star", "STAR", "Sheng et al., CIKM 2021; Scenario-Wise Rec's Star", attach=attach, grows=True,
                settings=StarSettings)
