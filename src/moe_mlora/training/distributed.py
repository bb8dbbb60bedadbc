"""Data-parallel training under torchrun: `torchrun --nproc-per-node N -m moe_mlora train ...`.

Every process builds the same model from the same seed and draws the same global batch order; each
trains on its own slice of every global batch through DistributedDataParallel (gloo on CPU, NCCL on
GPU), which averages the gradients. The loss is scaled so the averaged gradient is the gradient of the
global batch's mean loss, whatever the slices' sizes: with the same global batch, N processes take the
same optimizer steps as one (up to float summation order). Per-expert phases count each expert's rows
over the global batch, as one process would. Every process evaluates (the weights are identical), so
early stopping decides alike everywhere; rank 0 writes the run.

Dropout draws its masks per process, so with dropout the N-process run equals the 1-process run in
distribution, not digit for digit.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn

from moe_mlora.batches import TensorPart


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    return rank() == 0


@contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Join the torchrun job described by the environment (WORLD_SIZE > 1), for the duration of the block."""
    joined = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized()
    if joined:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    try:
        yield
    finally:
        if joined:
            dist.destroy_process_group()


def data_parallel(model: nn.Module, find_unused: bool) -> nn.Module:
    """The model wrapped for gradient averaging over the job's processes (the model itself alone)."""
    if world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=find_unused, broadcast_buffers=False)


def local_slice(batch: TensorPart) -> TensorPart:
    """This process's contiguous share of a global batch (sizes differ by at most one row)."""
    size, me = world_size(), rank()
    if size == 1:
        return batch
    bounds = [len(batch) * i // size for i in range(size + 1)]
    return batch.select(slice(bounds[me], bounds[me + 1]))


def summed(value: torch.Tensor) -> torch.Tensor:
    """The value summed over the job's processes (itself in a single process)."""
    if world_size() > 1:
        value = value.clone()
        dist.all_reduce(value)
    return value
