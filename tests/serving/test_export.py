"""Exported graphs score as predict does: every backbone x Base / MLoRA / MoE-MLoRA, on torch.export and ONNX."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers import with_random_adapters
from moe_mlora.adapters import AdapterConfig
from moe_mlora.cli import app
from moe_mlora.batches import TensorPart
from moe_mlora.features import FeatureSpec
from moe_mlora.models import MODELS, build_model
from moe_mlora.serving.export import export_model
from moe_mlora.training.evaluation import predict_logits

SPEC = FeatureSpec(("user_id", "item_id", "domain"), (40, 30, 3), ("a", "b", "c"))
APPROACHES = [("base", 1), ("mlora", 1), ("moe-mlora", 2)]
HAS_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript", "onnxruntime"))


def trained_looking(name: str, approach: str, k: int):
    """A model whose adapters and gate are non-trivial (fresh adapters would add exactly zero)."""
    torch.manual_seed(0)
    model = build_model(name, SPEC, dnn_hidden=(30, 17, 6)).eval()
    return with_random_adapters(model, AdapterConfig(approach, 3, k, rank=3)) if approach != "base" else model


def rows(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.stack([torch.randint(0, c, (n,), generator=g) for c in SPEC.cardinalities], dim=1)
    return codes, codes[:, -1].clone()


def predicted(model, codes, domains) -> np.ndarray:
    """What moe-mlora predict computes: the merged inference path, then the sigmoid."""
    part = TensorPart(codes, domains, torch.zeros(len(codes)))
    return torch.sigmoid(predict_logits(model, part)).numpy()


@pytest.mark.parametrize("approach, k", APPROACHES)
@pytest.mark.parametrize("name", list(MODELS))
def test_torch_export_graph_matches_predict_for_any_batch_size(name, approach, k, tmp_path):
    model = trained_looking(name, approach, k)
    path = export_model(model, tmp_path / "model.pt2", "torch-export")
    program = torch.export.load(str(path)).module()
    for n in (1, 57):  # the example batch had 4 rows: the batch size is dynamic
        codes, domains = rows(n, seed=n)
        np.testing.assert_allclose(program(codes, domains).detach().numpy(), predicted(model, codes, domains),
                                   rtol=0, atol=1e-5)


@pytest.mark.skipif(not HAS_ONNX, reason="the onnx extra is not installed (pip install 'moe-mlora[onnx]')")
@pytest.mark.parametrize("approach, k", APPROACHES)
@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_graph_on_onnxruntime_matches_predict(name, approach, k, tmp_path):
    import onnxruntime

    model = trained_looking(name, approach, k)
    session = onnxruntime.InferenceSession(str(export_model(model, tmp_path / "model.onnx", "onnx")))
    for n in (1, 57):
        codes, domains = rows(n, seed=n)
        (probability,) = session.run(None, {"codes": codes.numpy(), "domains": domains.numpy()})
        np.testing.assert_allclose(probability, predicted(model, codes, domains), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["deepfm", "autoint"])
def test_a_one_domain_graph_is_the_merged_plain_model_for_that_domains_rows(name, tmp_path):
    model = trained_looking(name, "moe-mlora", 2)
    program = torch.export.load(str(export_model(model, tmp_path / "b.pt2", "torch-export", domain=1))).module()
    codes, _ = rows(40)
    codes[:, -1] = 1
    domains = torch.ones(40, dtype=torch.int64)
    np.testing.assert_allclose(program(codes, domains).detach().numpy(), predicted(model, codes, domains), atol=1e-5)


def test_the_export_command_writes_a_graph_for_a_run_and_refuses_bad_options(moe_run, tmp_path):
    folder, _, _ = moe_run
    done = CliRunner().invoke(app, ["export", str(folder), "--format", "torch-export", "--domain", "south"])
    assert done.exit_code == 0, done.output
    assert (folder / "export" / "model-south.pt2").is_file()
    for options, message in ((["--format", "tflite"], "--format must be one of"),
                             (["--domain", "mars"], "--domain 'mars' is not one of")):
        refused = CliRunner().invoke(app, ["export", str(folder), *options])
        assert refused.exit_code == 2 and message in refused.output and "Traceback" not in refused.output
