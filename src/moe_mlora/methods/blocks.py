"""Building blocks the methods share: stacked MLPs (experts, per-domain towers), a per-row pick, and
PEPNet's gate unit. Stacked tensors keep every expert or domain in one batched product, with no Python
loop over rows' domains, so a model exports as one graph."""

from __future__ import annotations

import torch
from torch import nn

from moe_mlora.errors import ConfigError
from moe_mlora.layers.domain_part import OutputPart
from moe_mlora.layers.dropout import FastDropout
from moe_mlora.settings import setting
from moe_mlora.training.config import derive_seed


class StackedMLPs(nn.Module):
    """E independent ReLU MLPs of the same shapes, as (E, in, out) tensors: (batch, in) -> (batch, E, out).

    Each layer is ReLU(Dropout(x W_e + b_e)), initialised as the backbone's tower is (Glorot normal, zero bias).
    """

    def __init__(self, n: int, layer_shapes: list[tuple[int, int]], dropout: float) -> None:
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for in_dim, out_dim in layer_shapes:
            weight = torch.empty(n, in_dim, out_dim)
            for e in range(n):
                nn.init.xavier_normal_(weight[e].T)
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(torch.zeros(n, out_dim)))
        self.dropout = FastDropout(dropout)

    @property
    def n(self) -> int:
        return self.weights[0].shape[0]

    def forward_slice(self, inputs: torch.Tensor, start: int, count: int) -> torch.Tensor:
        """Only experts start .. start + count - 1 on `inputs`: (batch, in) -> (batch, count, out), the same numbers
        as forward(inputs)[:, start:start + count] (each row through those experts alone)."""
        first = self.weights[0][start:start + count]
        n, in_dim, out_dim = first.shape
        hidden = (inputs @ first.permute(1, 0, 2).reshape(in_dim, n * out_dim)).view(-1, n, out_dim)
        hidden = torch.relu(self.dropout(hidden + self.biases[0][start:start + count]))
        for weight, bias in zip(self.weights[1:], self.biases[1:]):
            hidden = torch.relu(self.dropout(torch.einsum("bei,eio->beo", hidden, weight[start:start + count])
                                             + bias[start:start + count]))
        return hidden

    def forward_own(self, inputs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Each row through its own MLP `index[row]`: (batch, in) -> (batch, out); see own_block."""
        return self.own_block(inputs, index, 1, grouped=self.training).squeeze(1)

    def own_block(self, inputs: torch.Tensor, index: torch.Tensor, count: int, grouped: bool) -> torch.Tensor:
        """Each row through its own block of `count` MLPs (index[row] * count ...): (batch, in) -> (batch, count, out).
        Grouped (training): the rows sorted by block, one product per block present, so a step costs about one
        block whatever E; otherwise every MLP runs on every row and each row keeps its block (no data-dependent
        shapes, so the graph exports)."""
        if not grouped:
            every = self.forward(inputs)
            own = index.unsqueeze(1) * count + torch.arange(count, device=inputs.device)
            return every.gather(1, own.unsqueeze(2).expand(-1, -1, every.shape[2]))
        order, present, sizes, back = grouped_by_domain(index, self.n // count)
        chunks = inputs.index_select(0, order).split(sizes)
        own = torch.cat([self.forward_slice(chunk, block * count, count) for block, chunk in zip(present, chunks)])
        return own.index_select(0, back)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        first, rest = self.weights[0], list(zip(self.weights[1:], self.biases[1:]))
        n, in_dim, out_dim = first.shape
        hidden = (inputs @ first.permute(1, 0, 2).reshape(in_dim, n * out_dim)).view(-1, n, out_dim)
        hidden = torch.relu(self.dropout(hidden + self.biases[0]))
        for weight, bias in rest:
            hidden = torch.relu(self.dropout(torch.einsum("bei,eio->beo", hidden, weight) + bias))
        return hidden


def grouped_by_domain(domains: torch.Tensor, n_domains: int) -> tuple[torch.Tensor, list[int], list[int], torch.Tensor]:
    """How a training forward groups its rows by domain (one product per domain present): the order that sorts
    the rows by domain, the domains present, their row counts (for split) and the order that puts rows back."""
    order = torch.argsort(domains, stable=True)
    counts = torch.bincount(domains, minlength=n_domains).tolist()
    present = [domain for domain, count in enumerate(counts) if count]
    return order, present, [counts[domain] for domain in present], torch.argsort(order)


def domain_embedding(n_domains: int, dim: int, std: float) -> nn.Embedding:
    """A method's own domain embedding, starting like the field embeddings (N(0, std)): what #39 asks of every
    method's embeddings; the methods registered before keep torch's N(0, 1) unless --part-embeddings like-fields."""
    embedding = nn.Embedding(n_domains, dim)
    nn.init.normal_(embedding.weight, std=std)
    return embedding


def pick(stacked: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(batch, E, d) and (batch,) -> (batch, d): each row's own slice (a gather, which export can trace)."""
    return stacked.gather(1, index.view(-1, 1, 1).expand(-1, 1, stacked.shape[2])).squeeze(1)


class GateNU(nn.Module):
    """PEPNet's gate neural unit: gamma * sigmoid(W2 ReLU(W1 x)), in (0, gamma); about 1 at the start."""

    def __init__(self, in_dim: int, out_dim: int, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = gamma
        self.hidden = nn.Linear(in_dim, out_dim)
        self.out = nn.Linear(out_dim, out_dim)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.sigmoid(self.out(torch.relu(self.hidden(inputs))))


class DomainMixer(nn.Module):
    """Per-domain softmax gates over experts, from the tower's input (MMoE's and PLE's gates):
    (batch, in), (batch,) domains -> (batch, E) weights, each row by its own domain's gate."""

    def __init__(self, n_domains: int, in_dim: int, n_experts: int) -> None:
        super().__init__()
        self.n_experts = n_experts
        self.logits = nn.Linear(in_dim, n_domains * n_experts)

    def forward(self, inputs: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        logits = pick(self.logits(inputs).unflatten(1, (-1, self.n_experts)), domains)
        return torch.softmax(logits, dim=-1)


# Where a method's domain-specific part ends: `shared`, the backbone's own output layer (only the tower is
# domain-specific: the shipped records ran so) or `domain`, each domain's own output unit over everything the
# backbone feeds its output (as the method's paper and Scenario-Wise Rec end a domain's tower).
OUTPUTS = ("shared", "domain")


def output_setting(method: str):
    """The `output` setting of a method whose towers may end in a per-domain output unit."""
    return setting("shared", help=f"{method}: where the domain-specific part ends: shared (the backbone's output "
                   "layer; only the tower is domain-specific) | domain (each domain's own output unit over the tower "
                   "and every other logit term: FM, cross, CIN, attention, linear).")


def check_output(method: str, output: str) -> None:
    if output not in OUTPUTS:
        raise ConfigError(f"{method} output must be one of {', '.join(OUTPUTS)}, got '{output}'")


class DomainOutput(OutputPart):
    """Each domain's own output unit: logit_d = w_d . features + sum_k a_dk term_k + b_d (plus the model's bias).

    `features` is what the backbone feeds its output layer (the tower's output, with DCN's cross and AutoInt's
    attention outputs beside it); the terms are its other logit terms (DeepFM's FM, xDeepFM's CIN, the linear
    term), each with a weight per domain that starts at 1, so every term starts as the backbone adds it.
    `star=True`: STAR's topology, w_d = w_shared * v_d with v_d starting at ones (the backbone's own output layer
    is the shared weight: a fresh unit computes the backbone's logit); otherwise every domain's w_d is a fresh
    draw, as the backbone's output layer is drawn (Glorot normal), and the shared layer is left unused.
    """

    def __init__(self, n_domains: int, in_dim: int, n_terms: int, star: bool) -> None:
        super().__init__(n_domains)
        self.star = star
        weights = torch.ones(n_domains, in_dim)
        if not star:
            for domain in range(n_domains):
                nn.init.xavier_normal_(weights[domain:domain + 1])
        self.weights = nn.Parameter(weights)
        self.term_weights = nn.Parameter(torch.ones(n_domains, n_terms))
        self.biases = nn.Parameter(torch.zeros(n_domains))

    def forward_output(self, head: nn.Linear, features: torch.Tensor, terms: list[torch.Tensor],
                       domains: torch.Tensor) -> torch.Tensor:
        weight = self.weights.index_select(0, domains)  # index_select: a backward that repeats at any thread count
        if self.star:
            weight = head.weight * weight
        logit = (features * weight).sum(1) + self.biases.index_select(0, domains)
        if terms:
            logit = logit + (torch.stack(terms, dim=1) * self.term_weights.index_select(0, domains)).sum(1)
        return logit


def attach_domain_output(model, n_domains: int, star: bool) -> None:
    """Give `model` a per-domain output unit (call under `seeded`)."""
    model.output_part = DomainOutput(n_domains, model.head.in_features, len(model.logit_term_names), star)


def attach_tower_parts(model, run_seed: int, build, output_domains: int = 0) -> None:
    """Give every tower of `model` the part `build(tower)` returns and, with `output_domains` n > 0, each of n
    domains its own output unit (DomainOutput), all drawn under `seeded(run_seed)`."""
    from moe_mlora.adapters import towers_of

    with seeded(run_seed):
        for tower in towers_of(model):
            tower.adapter = build(tower)
        if output_domains:
            attach_domain_output(model, output_domains, star=False)


class seeded:
    """`with seeded(run_seed):` draws a part's initialisation from a seed derived from the run's (the LoRA
    adapters' stream) and leaves the global random stream as it was, so the batches and dropout masks that
    follow are those of the bare backbone."""

    def __init__(self, run_seed: int) -> None:
        self.seed = derive_seed(run_seed, "adapters")
        self.fork = torch.random.fork_rng(devices=[])

    def __enter__(self) -> None:
        self.fork.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc) -> None:
        self.fork.__exit__(*exc)
