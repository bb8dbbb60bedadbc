"""The seam every multi-domain method plugs into: a DomainPart is the parameters a method adds to a backbone.

A backbone knows nothing of methods. It offers two places to plug a part in:

* each MLP tower (moe_mlora.layers.Tower) takes one `TowerPart` (`tower.adapter`), which computes the whole
  tower for each row given its routing ids: a low-rank correction per layer (MLoRA, MoE-MLoRA), gates after
  each activation (PPNet), weights shared element-wise with each domain's (STAR), experts and per-domain
  towers (SharedBottom, MMoE, PLE);
* the model itself takes one `ModelPart` (`model.domain_part`), which may rescale the field embeddings
  before any interaction sees them (EPNet) and add a logit of its own (STAR's auxiliary network);
* the model's output takes one `OutputPart` (`model.output_part`), which turns everything the backbone feeds
  its output (the output layer's input: the tower and, on parallel backbones, the cross / attention outputs;
  and the logit terms added beside it: FM, CIN, the linear term) into each row's logit by its domain's own
  output unit, so a method reaches the whole logit and not only the tower (STAR's, SharedBottom's, MMoE's and
  PLE's per-domain output).

A part may also read the batch's raw field codes while the model's forward runs (`row_codes()`): PPNet's
personal prior embeds the user and item ids of each row itself.

A method's weights are found by structure: every module that is a DomainPart, and nothing else. The
backbone is everything that is not, so a backbone file never holds a method's tensors, whatever their names.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from moe_mlora.errors import ConfigError


_ROW_CODES: contextvars.ContextVar[torch.Tensor | None] = contextvars.ContextVar("row_codes", default=None)


@contextmanager
def codes_of_this_forward(codes: torch.Tensor) -> Iterator[None]:
    """The model's forward runs inside this: its parts may read the rows' field codes through row_codes()."""
    token = _ROW_CODES.set(codes)
    try:
        yield
    finally:
        _ROW_CODES.reset(token)


def row_codes() -> torch.Tensor:
    """(batch, fields) codes of the rows the model is scoring now; only inside a model's forward."""
    codes = _ROW_CODES.get()
    if codes is None:
        raise RuntimeError("row_codes() is only available while a CTRModel's forward runs")
    return codes


class DomainPart(nn.Module):
    """Parameters a method adds to a backbone, routed by each row's id (a domain id unless a mode says otherwise)."""

    def __init__(self, n_domains: int) -> None:
        super().__init__()
        self.n_domains = n_domains
        self.merged = None  # a per-domain fold for inference, where the method has one (moe_mlora.adapters.merge)
        # Ids are checked on every forward (a clear error instead of an index error deep inside); an exported
        # graph cannot branch on data, so export turns this off and validates ids before the graph instead.
        self.validate_ids = True
        self.added_rows: dict[str, slice] = {}  # after add-domain's growth: the new domain's rows per tensor

    @torch.no_grad()
    def grow_into(self, grown: "DomainPart", shares: torch.Tensor) -> None:
        """Copy this part into `grown`, the same part built for one domain more (add-domain's growth rule).

        A tensor of the same shape in both is shared by every domain and copied. A tensor whose first dimension
        holds one block per domain (n blocks here, n + 1 there: per-domain weights, a domain embedding, a
        per-domain gate's rows) gets the old blocks unchanged and, for the new domain, their mean weighted by
        the domains' training shares (the "average domain"); `grown.added_rows` records those rows, the only
        ones add-domain trains. Any other change of shape has no rule: a one-line error.
        """
        n, old_state, new_state = self.n_domains, self.state_dict(), grown.state_dict()
        grown.added_rows = {}
        for name, old in old_state.items():
            new = new_state[name]
            if new.shape == old.shape:
                new.copy_(old)
                continue
            block = old.shape[0] // n if old.dim() and old.shape[0] % n == 0 else 0
            if not block or new.shape != (old.shape[0] + block, *old.shape[1:]):
                raise ConfigError(f"{type(self).__name__}.{name}: no growth rule for a new domain "
                                  f"({tuple(old.shape)} -> {tuple(new.shape)})")
            blocks = old.reshape(n, block, *old.shape[1:])
            weights = shares.to(old.dtype).view(n, *[1] * (blocks.dim() - 1))
            new[: n * block] = old
            new[n * block:] = (weights * blocks).sum(0) if old.is_floating_point() else blocks[0]
            grown.added_rows[name] = slice(n * block, (n + 1) * block)

    def l2_groups(self) -> list[tuple[float, list[nn.Parameter]]]:
        """(lambda, weights) under an L2 penalty, as CTRModel.l2_groups: none unless a part holds embeddings that
        stand for a backbone's (Separate's models)."""
        return []

    def check_routing_ids(self, ids: torch.Tensor) -> None:
        if self.validate_ids and ids.numel() and (int(ids.max()) >= self.n_domains or int(ids.min()) < 0):
            bad = int(ids.max()) if int(ids.max()) >= self.n_domains else int(ids.min())
            raise ConfigError(f"domain id {bad} is unknown: the model was built for {self.n_domains} domains")


class TowerPart(DomainPart):
    """Plugged into a Tower: computes the tower's output for each row from its input and routing id."""

    def forward_tower(self, tower: nn.Module, inputs: torch.Tensor, routing_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ModelPart(DomainPart):
    """Plugged into a CTRModel: may rescale the embedded fields and add a logit of its own, or (`scores_rows`)
    score the rows itself (Separate: a whole model per domain)."""

    scores_rows = False  # True: `score` computes every row's logit and the backbone's forward is one of its tools

    def score(self, backbone_forward, codes: torch.Tensor, domains: torch.Tensor, dense: torch.Tensor | None,
              bags: torch.Tensor | None) -> torch.Tensor:
        """(batch,) logits; `backbone_forward(codes, domains, dense, bags)` is the model's own backbone."""
        raise NotImplementedError

    def embeddings(self, embeddings: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        """(batch, fields, dim) -> the same shape, before any interaction layer sees them."""
        return embeddings

    def extra_logit(self, embeddings: torch.Tensor, domains: torch.Tensor) -> torch.Tensor | None:
        """(batch,) added to the model's logit, or None."""
        return None


class OutputPart(DomainPart):
    """Plugged into a CTRModel's output: each row's logit (before the model's bias) from the output layer's input
    and the backbone's other logit terms, by the row's own domain."""

    def forward_output(self, head: nn.Linear, features: torch.Tensor, terms: list[torch.Tensor],
                       domains: torch.Tensor) -> torch.Tensor:
        """`head`: the backbone's shared output layer; `features` (batch, head's in) its input; `terms` the
        backbone's other (batch,) logit terms, in the order of the model's `logit_term_names` -> (batch,)."""
        raise NotImplementedError


def domain_parts(model: nn.Module) -> list[tuple[str, DomainPart]]:
    """Every DomainPart of `model` (outermost ones only), with its path in the model."""
    found: list[tuple[str, DomainPart]] = []
    for name, module in model.named_modules():
        if isinstance(module, DomainPart) and not any(name.startswith(f"{outer}.") for outer, _ in found):
            found.append((name, module))
    return found


def is_part_key(key: str, part_paths: list[str]) -> bool:
    return any(key == path or key.startswith(f"{path}.") for path in part_paths)


def part_state_keys(model: nn.Module) -> set[str]:
    """The state-dict keys that belong to a method's parts (the rest is the backbone)."""
    paths = [name for name, _ in domain_parts(model)]
    return {key for key in model.state_dict() if is_part_key(key, paths)}


def backbone_state_keys(model: nn.Module) -> list[str]:
    paths = [name for name, _ in domain_parts(model)]
    return [key for key in model.state_dict() if not is_part_key(key, paths)]


def added_domain_rows(model: nn.Module) -> list[tuple[nn.Parameter, slice]]:
    """The parameters of grown method parts (not LoRA adapters, which add-domain grows itself) with the rows
    that belong to the added domain."""
    rows = []
    for _, part in domain_parts(model):
        parameters = dict(part.named_parameters())
        rows += [(parameters[name], where) for name, where in part.added_rows.items() if name in parameters]
    return rows


def method_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for _, part in domain_parts(model) for p in part.parameters()]


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter that no method part owns, in the model's order."""
    owned = {id(p) for p in method_parameters(model)}
    return [p for p in model.parameters() if id(p) not in owned]
