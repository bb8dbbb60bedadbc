"""Which rows a training step sees, in what order: one epoch of batches as index slices.

* shuffled:  one random permutation of all rows, cut into batches (rows of many domains mix).
* by-domain: single-domain batches, domains visited in a shuffled order, rows shuffled within each
             domain (the MLoRA and MoE-MLoRA authors' code trains every model this way).
* per-group: for training many experts at once as if each trained alone: iteration i holds the i-th
             batch of every active group (expert), each group's rows shuffled on their own. A group's
             batches depend only on the generator's state, never on which other groups are active, so
             one-at-a-time and all-at-once training draw alike.

All orders draw from the given generator only, so a phase's seed fixes its batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum

import torch

from moe_mlora.batches import Part, TensorPart


class BatchOrder(str, Enum):
    SHUFFLED = "shuffled"
    BY_DOMAIN = "by-domain"


def epoch_batches(part: Part, batch_size: int, order: BatchOrder, generator: torch.Generator) -> Iterator[TensorPart]:
    """One epoch over `part` in the given order (one gather per chunk, batches are slices). A part on disk
    (moe_mlora.data.streaming) goes chunk by chunk, the chunks in random order, each in the given order."""
    for chunk in part.chunks(generator):
        yield from _chunk_batches(chunk, batch_size, BatchOrder(order), generator)


def _chunk_batches(part: TensorPart, batch_size: int, order: BatchOrder, generator: torch.Generator) -> Iterator[TensorPart]:
    n = len(part)
    if order is BatchOrder.SHUFFLED:
        permuted = part.select(torch.randperm(n, generator=generator))
        for start in range(0, n, batch_size):
            yield permuted.select(slice(start, start + batch_size))
        return
    yield from _runs_of_batches(part, part.domains, batch_size, generator)


def group_batches(
    part: TensorPart, groups: torch.Tensor, active: torch.Tensor, batch_size: int, generator: torch.Generator
) -> Iterator[TensorPart]:
    """Iteration i holds the i-th batch (up to batch_size rows) of every active group."""
    noise = torch.rand(len(part), generator=generator)  # drawn for every row, whatever is active
    chosen = torch.nonzero(active[groups]).squeeze(1)
    grouped = chosen[torch.argsort(groups[chosen].double() * 2 + noise[chosen].double())]  # by group, shuffled within
    sorted_groups = groups[grouped]
    first = torch.searchsorted(sorted_groups, sorted_groups, right=False)
    iteration = (torch.arange(len(grouped)) - first) // batch_size
    order = grouped[torch.argsort(iteration, stable=True)]
    start = 0
    for size in torch.bincount(iteration).tolist():
        yield part.select(order[start:start + size])
        start += size


def _runs_of_batches(part: TensorPart, keys: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator[TensorPart]:
    """Batches that never mix keys: keys visited in a shuffled order, rows shuffled within a key."""
    n = len(part)
    if n == 0:
        return
    key_rank = torch.argsort(torch.randperm(int(keys.max()) + 1, generator=generator))
    noise = torch.rand(n, generator=generator)
    permutation = torch.argsort(key_rank[keys].double() * 2 + noise.double())
    permuted = part.select(permutation)
    bounds = torch.unique_consecutive(keys[permutation], return_counts=True)[1].cumsum(0).tolist()
    start_of_run = 0
    for end_of_run in bounds:
        for start in range(start_of_run, end_of_run, batch_size):
            yield permuted.select(slice(start, min(start + batch_size, end_of_run)))
        start_of_run = end_of_run
