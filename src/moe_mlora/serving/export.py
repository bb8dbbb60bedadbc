"""Export a trained run as a graph for serving outside Python: torch.export (.pt2) or ONNX (.onnx).

The graph maps encoded rows to click probabilities:

    inputs   codes    int64 (batch, fields)   each field's code from the run's vocabulary.json
             domains  int64 (batch,)          each row's domain id (manifest.json's domain_names order)
             and, for a run with numeric or multi-valued features, dense float32 (batch, 2 per numeric
             column: standardised value, missing flag) and bags int64 (batch, bags, length; -1 pads)
    output   probability float32 (batch,)

The batch size is dynamic. Two kinds:

* all domains (default): one graph that routes each row by its domain input, through the standard
  (unmerged) adapter path, since the grouped-GEMM merge has no ONNX lowering;
* one domain (`domain=`): that domain's experts folded into the tower (merge_domain), a plain backbone
  graph; its `domains` input is accepted and ignored, so both kinds are called alike.

Ids are not checked inside a graph (a graph cannot branch on data): validate them before, as
moe_mlora.serving.Predictor does.
"""

from __future__ import annotations

import copy
import logging
import warnings
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

import torch
from torch import nn

from moe_mlora.adapters import merge_domain
from moe_mlora.errors import ConfigError, DataError
from moe_mlora.files import atomic_path, probe_output_file, safe_name
from moe_mlora.layers.domain_part import domain_parts
from moe_mlora.methods import get_method
from moe_mlora.models import CTRModel
from moe_mlora.serving.manifest import load_run

INPUT_NAMES, OUTPUT_NAMES = ["codes", "domains"], ["probability"]


class ExportFormat(str, Enum):
    ONNX = "onnx"
    TORCH_EXPORT = "torch-export"

    @property
    def suffix(self) -> str:
        return ".onnx" if self is ExportFormat.ONNX else ".pt2"


class ScoringGraph(nn.Module):
    """(codes, domains) -> probabilities: what an exported graph computes."""

    def __init__(self, model: CTRModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, codes: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(codes, domains))


class FeatureScoringGraph(ScoringGraph):
    """(codes, domains, dense, bags) -> probabilities, for a run with numeric and multi-valued features
    (dense: float32 [batch, 2 per numeric column], bags: int64 [batch, bags, length] with -1 pads)."""

    def forward(self, codes: torch.Tensor, domains: torch.Tensor, dense: torch.Tensor, bags: torch.Tensor) -> torch.Tensor:
        spec = self.model.spec
        return torch.sigmoid(self.model(codes, domains, dense if spec.n_dense else None, bags if spec.n_bags else None))


def input_names(model: CTRModel) -> list[str]:
    return [*INPUT_NAMES, "dense", "bags"] if model.spec.n_dense or model.spec.n_bags else list(INPUT_NAMES)


def scoring_graph(model: CTRModel, domain: int | None = None) -> ScoringGraph:
    """An eval-mode copy ready to export; the model itself is left as it was."""
    plain = merge_domain(model, domain) if domain is not None else copy.deepcopy(model)
    for _, part in domain_parts(plain):
        part.validate_ids = False
        part.merged = None
    kind = FeatureScoringGraph if len(input_names(model)) > 2 else ScoringGraph
    return kind(plain.cpu()).eval()


def example_inputs(model: CTRModel, rows: int = 4) -> tuple[torch.Tensor, ...]:
    spec = model.spec
    generator = torch.Generator().manual_seed(0)
    codes = torch.stack([torch.randint(0, size, (rows,), generator=generator) for size in spec.cardinalities], 1)
    domains = torch.randint(0, spec.n_domains, (rows,), generator=generator)
    if "domain" in spec.field_names:
        codes[:, spec.field_names.index("domain")] = domains
    if len(input_names(model)) == 2:
        return codes, domains
    dense = torch.randn(rows, max(spec.n_dense, 1), generator=generator)
    bags = torch.stack([torch.randint(-1, max(size, 1), (rows, 3), generator=generator)
                        for size in spec.bag_cardinalities or (1,)], 1)
    return codes, domains, dense, bags


def torch_export(graph: ScoringGraph, inputs: tuple[torch.Tensor, ...]) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=1)
    shapes = {"codes": {0: batch}, "domains": {0: batch}}
    if len(inputs) > 2:
        shapes.update(dense={0: batch}, bags={0: batch, 2: torch.export.Dim("length", min=1)})
    return torch.export.export(graph, inputs, dynamic_shapes=shapes, strict=False)


def export_model(model: CTRModel, path: Path, fmt: ExportFormat | str, domain: int | None = None) -> Path:
    """Write `model` as a serving graph at `path` (all domains, or one domain merged)."""
    fmt = ExportFormat(fmt)
    graph = scoring_graph(model, domain)
    inputs = example_inputs(model)
    with torch.no_grad():
        program = torch_export(graph, inputs)
    with atomic_path(Path(path), keep_suffix=True) as temporary:
        if fmt is ExportFormat.TORCH_EXPORT:
            torch.export.save(program, str(temporary))
        else:
            _require_onnx()
            with _quiet_exporter():
                onnx_program = torch.onnx.export(program, inputs, input_names=input_names(model), output_names=OUTPUT_NAMES,
                                                 dynamo=True, verbose=False)
            onnx_program.save(str(temporary))
    return Path(path)


@contextmanager
def _quiet_exporter():
    """The ONNX exporter logs and warns about operator sets this graph never uses (torchvision's, ...)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_run(folder: Path, fmt: ExportFormat | str, domain: str | None = None, output: Path | None = None) -> Path:
    """Export a run folder's model; `domain` (a domain name) merges that domain into a plain graph."""
    try:
        fmt = ExportFormat(fmt)
    except ValueError:
        raise ConfigError(f"--format must be one of {', '.join(f.value for f in ExportFormat)}, got '{fmt}'") from None
    model, manifest = load_run(folder)
    domain_id = None
    if domain is not None:
        method = get_method(manifest.approach)
        if not method.folds:
            raise ConfigError(f"{method.title} has no per-domain fold into a plain graph; export all domains in one "
                              "graph (without --domain)")
        if domain not in manifest.domain_names:
            raise ConfigError(f"--domain '{domain}' is not one of the run's domains {list(manifest.domain_names)}")
        domain_id = manifest.domain_names.index(domain)
    name = "model" if domain is None else f"model-{safe_name(domain)}"
    path = output or Path(folder) / "export" / f"{name}{fmt.suffix}"
    probe_output_file(path)
    return export_model(model, path, fmt, domain_id)


def _require_onnx() -> None:
    missing = [name for name in ("onnx", "onnxscript") if not _importable(name)]
    if missing:
        raise DataError(f"ONNX export needs {', '.join(missing)}: pip install 'moe-mlora[onnx]'")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
