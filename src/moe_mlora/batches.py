"""The batch types every layer may import (no dataset loader here).

`Part` is what training and evaluation take: one split of a dataset, gone through a chunk at a time.
`TensorPart` holds a split (or a batch) in memory as tensors and is its own single chunk; a split on disk
(moe_mlora.data.streaming.ShardedPart) yields many. Code that needs every row at once (selecting one
domain's rows, as the authors'-code schedule does) asks `in_memory`, never the part's type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import ClassVar, Protocol

import torch


class Part(Protocol):
    in_memory: ClassVar[bool]  # True: its rows are tensors in memory, so rows can be selected by index

    def __len__(self) -> int: ...

    @property
    def domains(self) -> torch.Tensor: ...  # (N,) every row's domain id

    @property
    def labels(self) -> torch.Tensor: ...  # (N,) float32

    def chunks(self, generator: torch.Generator | None = None) -> Iterator["TensorPart"]: ...

    def expert_view(self, view: Callable[["TensorPart"], "TensorPart"], copies: int) -> "Part": ...


@dataclass
class TensorPart:
    """One split held as tensors: batches are index slices of these.

    `experts` is set only in an expert view (MoE-MLoRA phase 2), where every row appears once per expert
    of its domain; the tower then routes by expert id instead of domain id (see `routing_ids`).
    `dense` and `bags` hold a user table's numeric and multi-valued features, when it has any.
    """

    codes: torch.Tensor  # (N, F) int64
    domains: torch.Tensor  # (N,) int64
    labels: torch.Tensor  # (N,) float32
    experts: torch.Tensor | None = None  # (N,) int64 expert ids, in an expert view
    dense: torch.Tensor | None = None  # (N, 2 * numeric columns) float32
    bags: torch.Tensor | None = None  # (N, bags, length) int64 codes, -1 pads
    in_memory: ClassVar[bool] = True

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def routing_ids(self) -> torch.Tensor:
        """What the tower routes each row by: its expert in an expert view, else its domain."""
        return self.domains if self.experts is None else self.experts

    def model_inputs(self) -> tuple:
        """What the model's forward takes: codes, routing ids, dense features, bags."""
        return self.codes, self.routing_ids, self.dense, self.bags

    def chunks(self, generator: torch.Generator | None = None) -> Iterator["TensorPart"]:
        """The part as chunks to go through one at a time: itself, in memory (a part on disk,
        moe_mlora.data.streaming, yields many, in an order drawn from `generator`)."""
        yield self

    def expert_view(self, view: Callable[["TensorPart"], "TensorPart"], copies: int) -> "TensorPart":
        """The part as `view` sees it (`copies` rows per row, e.g. MoE-MLoRA's expert view): in memory, at once."""
        return view(self)

    def map_tensors(self, function) -> "TensorPart":
        """The same part with `function` applied to each of its tensors."""
        return TensorPart(**{f.name: None if getattr(self, f.name) is None else function(getattr(self, f.name))
                             for f in fields(self)})

    def to(self, device: torch.device | str) -> "TensorPart":
        return self.map_tensors(lambda tensor: tensor.to(device))

    def select(self, index: torch.Tensor | slice) -> "TensorPart":
        return self.map_tensors(lambda tensor: tensor[index])
