"""Training settings shared by every phase, and the seeds each phase derives from the run's seed."""

from __future__ import annotations

import contextvars

import hashlib
import math
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from moe_mlora.errors import ConfigError
from moe_mlora.settings import setting
from moe_mlora.training.metrics import SelectBy
from moe_mlora.training.samplers import BatchOrder

DEFAULT_MAX_EPOCHS = 200  # per phase; early stopping ends every ML-100K phase long before it (the record says if not)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings shared by every phase. Each field is a setting (moe_mlora.settings): a command-line
    option of `train` and of the sweeps, a config-file key, and, unless it cannot change the numbers, part
    of the run's key."""

    learning_rate: float = setting(1e-3, help="Adam's learning rate, every phase (MoE-MLoRA's gate: see --gate-learning-rate).")
    batch_size: int = setting(1024, help="Training rows per batch.")
    eval_batch_size: int = setting(8192, help="Rows per forward pass in validation, test and serving (cannot change the numbers beyond the last digits).")
    max_epochs: int = setting(DEFAULT_MAX_EPOCHS, help="Epoch cap per phase (early stopping ends sooner; the record says if the cap ended a phase).")
    patience: int = setting(3, help="Epochs without validation improvement before stopping.")
    seed: int = setting(2024, help="Seed for initialisation and batch order (sweeps set it per run).")
    batch_order: str = setting(BatchOrder.SHUFFLED.value, help="shuffled (mixed-domain batches) | by-domain (single-domain batches, domains in shuffled order, as the authors' code); the same for every approach and phase.")
    select_by: str = setting(SelectBy.WAUC.value, help="Validation score for early stopping and selection: wauc | mean-auc (unweighted mean of per-domain AUCs, as the authors' code) | auc (pooled over all rows, as Scenario-Wise Rec).")
    progress: bool = setting(True, help="Show progress bars.", identity=False)
    device: str = setting("cpu", help="cpu, cuda, ... (CPU is the default; no GPU is required).", identity=False)
    # The thread count changes the order of float reductions, hence the last digits (1: the published sweeps).
    threads: int = setting(1, help="CPU threads per run (default 1). Part of a run's identity: the thread count changes the last digits of the results.")
    # bf16: matrix products in bfloat16 where the CPU has the instructions, and on GPUs.
    precision: str = setting("fp32", help="fp32 | bf16 (bfloat16 autocast of the forward passes where the CPU has the instructions, and on GPUs; weights, optimizer and loss stay fp32). Part of a run's identity.")
    # torch's coupled decay (wd * w joins the gradient), on top of the model's own L2 terms.
    weight_decay: float = setting(0.0, help="Adam's weight decay on every trained weight (0: the paper's; Scenario-Wise Rec's protocol uses 1e-5).")
    min_epochs: int = setting(1, help="Epochs a phase trains before early stopping may end it (1: no floor, the paper's protocol); a floor keeps a slow start from being taken for a plateau.")

    def __post_init__(self) -> None:
        try:
            BatchOrder(self.batch_order)
        except ValueError:
            raise ConfigError(f"batch order must be one of {', '.join(o.value for o in BatchOrder)}, "
                              f"got '{self.batch_order}'") from None
        try:
            SelectBy(self.select_by)
        except ValueError:
            raise ConfigError(f"select-by must be one of {', '.join(s.value for s in SelectBy)}, "
                              f"got '{self.select_by}'") from None
        if not (isinstance(self.learning_rate, (int, float)) and math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigError(f"learning rate must be a positive number, got {self.learning_rate}")
        if not (isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight decay must be 0 or a positive number, got {self.weight_decay}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")
        for name in ("batch_size", "eval_batch_size", "max_epochs", "patience", "threads", "min_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}")
        if self.min_epochs > self.max_epochs:
            raise ConfigError(f"--min-epochs {self.min_epochs} exceeds --max-epochs {self.max_epochs}: the floor could "
                              "never be reached (lower it or raise the cap)")


PRECISIONS = ("fp32", "bf16")


def autocast(precision: str, device: torch.device | str = "cpu"):
    """The arithmetic of one forward pass: a no-op for fp32, bfloat16 autocast for bf16. Only forward passes
    run under it (as torch recommends): model building, backward and the optimizer step stay outside."""
    if precision != "bf16":
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


_PRECISION: contextvars.ContextVar[str] = contextvars.ContextVar("forward_precision", default="fp32")


@contextmanager
def forward_precision(precision: str) -> Iterator[None]:
    """The precision of the evaluation forwards inside the block (a run sets its own for all of them)."""
    token = _PRECISION.set(precision)
    try:
        yield
    finally:
        _PRECISION.reset(token)


def evaluation_autocast(device: torch.device | str = "cpu"):
    return autocast(_PRECISION.get(), device)


def available_cores() -> int:
    """The CPU cores this process may run on: its affinity mask where the OS has one (taskset, a container's
    cpuset, a test worker pinned to a core), else the machine's count. os.cpu_count() ignores the mask."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity call on this OS (macOS, Windows)
        return os.cpu_count() or 1


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` intra-op CPU threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resolve_device(name: str) -> torch.device:
    """The torch device for --device, or a one-line error when torch does not know it or it is not here."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device '{name}' is not a device torch knows (try cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: this torch ({torch.__version__}) sees no CUDA device here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type != "cpu":
        try:
            torch.empty(1, device=device)
        except (RuntimeError, AssertionError) as exc:
            raise ConfigError(f"--device {name} is not available here ({str(exc).splitlines()[0]})") from None
    return device


def derive_seed(seed: int, purpose: str) -> int:
    """A seed of its own for each purpose (a phase, the adapters' initialisation), fixed by the run seed."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % 2**63


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
