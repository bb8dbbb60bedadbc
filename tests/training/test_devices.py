"""--device: a real device or a one-line error; never silently the CPU."""

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from helpers import toy_parts
from moe_mlora.cli import app
from moe_mlora.errors import ConfigError
from moe_mlora.methods.registry import METHODS
from moe_mlora.models import build_model
from moe_mlora.serving.predictor import Predictor
from moe_mlora.training.approaches import ApproachConfig, train_approach
from moe_mlora.training.config import TrainConfig, resolve_device, set_seed


@pytest.mark.parametrize("name, message", [("banana", "is not a device torch knows"), ("cuda:7", "CUDA device")])
def test_an_unknown_or_absent_device_is_a_one_line_cli_error(name, message):
    if name.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    result = CliRunner().invoke(app, ["train", "--device", name, "--max-epochs", "1"])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_a_gpu_is_refused_not_silently_cpu():
    with pytest.raises(ConfigError, match="sees no CUDA device"):
        resolve_device("cuda")


def test_the_device_is_not_part_of_what_makes_a_run():
    from moe_mlora.experiments.run import RunConfig

    assert RunConfig(train=TrainConfig(device="cpu")).key() == RunConfig(train=TrainConfig(device="cuda:3")).key()


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("approach", list(METHODS))
def test_every_method_trains_end_to_end_on_cuda(approach):
    """Every registered method: its parts (built when the method attaches) live on the backbone's device."""
    spec, train, valid, _ = toy_parts()
    set_seed(0)
    model = build_model("deepfm", spec).to("cuda")
    config = TrainConfig(learning_rate=1e-2, max_epochs=2, batch_size=256, progress=False, device="cuda")
    report = train_approach(model, train, valid, spec.domain_names, ApproachConfig(approach, 1), config)
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert report.valid.wauc > 0.5


@needs_cuda
@pytest.mark.parametrize("approach", ["moe-mlora", "star"])
def test_a_run_trained_on_cuda_serves_on_cuda_as_on_the_cpu(approach, tmp_path):
    csv = tmp_path / "clicks.csv"
    rng = np.random.default_rng(0)
    region = rng.integers(0, 3, 1500)
    pd.DataFrame({"user": rng.integers(0, 50, 1500), "item": rng.integers(0, 40, 1500), "region": region,
                  "clicked": (rng.random(1500) < np.array([0.2, 0.5, 0.8])[region]).astype(int)}).to_csv(csv, index=False)
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["train", "--approach", approach, "--dataset", "table", "--table-path", str(csv),
                                      "--split-by", "region", "--features", "user,item", "--label-column", "clicked",
                                      "--device", "cuda", "--max-epochs", "2", "--runs-dir", str(runs), "--no-progress"])
    assert result.exit_code == 0, result.output
    run = next(runs.iterdir())
    rows = pd.read_csv(csv).head(200)
    on_cuda = Predictor.from_run(run, device="cuda").predict(rows)
    on_cpu = Predictor.from_run(run, device="cpu").predict(rows)
    np.testing.assert_allclose(on_cuda, on_cpu, atol=1e-5)
