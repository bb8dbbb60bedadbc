"""--device: a real device or a one-line error; never silently the CPU."""

import pytest
import torch
from typer.testing import CliRunner

from helpers import toy_parts
from moe_mlora.cli import app
from moe_mlora.errors import ConfigError
from moe_mlora.models import build_model
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("approach", ["base", "mlora", "moe-mlora"])
def test_every_approach_trains_end_to_end_on_cuda(approach):
    spec, train, valid, _ = toy_parts()
    set_seed(0)
    model = build_model("deepfm", spec).to("cuda")
    config = TrainConfig(learning_rate=1e-2, max_epochs=2, batch_size=256, progress=False, device="cuda")
    report = train_approach(model, train, valid, spec.domain_names, ApproachConfig(approach, 1), config)
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert report.valid.wauc > 0.5
