"""A killed run resumes where it stood: its numbers equal an uninterrupted run's bitwise, for every schedule."""

import dataclasses

import pytest
import torch

from helpers import toy_parts
from moe_mlora.models import build_model
from moe_mlora.training.approaches import ApproachConfig, train_approach
from moe_mlora.training.config import TrainConfig, set_seed
from moe_mlora.training.resume import RunCheckpoint

# Dropout and a high learning rate: every epoch draws dropout masks and moves the weights, so a resume that
# lost the dropout stream, the batch order or Adam's moments could not match.
CONFIG = TrainConfig(learning_rate=1e-2, max_epochs=4, patience=3, batch_size=256, progress=False, seed=3)
APPROACHES = {
    "base": ApproachConfig("base"),
    "mlora": ApproachConfig("mlora"),
    "moe-mlora": ApproachConfig("moe-mlora", 2),
    "moe-mlora sequential phase 2": ApproachConfig("moe-mlora", 2, phase2_schedule="sequential"),
    "moe-mlora authors-code": ApproachConfig("moe-mlora", schedule="authors-code"),
    "star": ApproachConfig("star"),
    "mmoe": ApproachConfig("mmoe"),
}


class Killed(Exception):
    """Stands for the process being killed after an epoch was saved."""


def train(approach: ApproachConfig, folder=None, kill_after: int | None = None, run: str = "toy"):
    spec, train_part, valid, _ = toy_parts(n_rows=2000)
    set_seed(CONFIG.seed)
    from moe_mlora.models import ModelConfig

    model = build_model("deepfm", spec, ModelConfig(dnn_hidden=(16, 8), dnn_dropout=0.3))
    epochs = []

    def on_epoch(label, record):
        epochs.append(label)
        if kill_after is not None and len(epochs) == kill_after:
            raise Killed

    checkpoint = RunCheckpoint(folder, {"run": run}, every=0) if folder is not None else None  # every epoch
    report = train_approach(model, train_part, valid, spec.domain_names, approach, CONFIG, on_epoch,
                            checkpoint=checkpoint)
    return model, report, epochs


def numbers(report) -> list:
    """Every phase's record but its timings."""
    return [{key: value for key, value in dataclasses.asdict(phase).items() if key != "seconds"}
            | {"history": [(r.epoch, r.train_loss, r.valid_score) for r in phase.history]} for phase in report.phases]


@pytest.mark.parametrize("name", list(APPROACHES))
def test_a_run_killed_after_an_epoch_resumes_to_the_uninterrupted_runs_weights_bitwise(name, tmp_path):
    approach = APPROACHES[name]
    straight, straight_report, epochs = train(approach)
    assert len(epochs) >= 3
    for kill_after in sorted({len(epochs) // 2, len(epochs) - 1}):  # mid-way and in the last fit
        folder = tmp_path / f"killed-{kill_after}"
        with pytest.raises(Killed):
            train(approach, folder, kill_after)
        resumed, resumed_report, resumed_epochs = train(approach, folder)
        assert len(resumed_epochs) == len(epochs) - kill_after, "the resumed run trained the saved epochs again"
        assert numbers(resumed_report) == numbers(straight_report)
        for (key, want), got in zip(straight.state_dict().items(), resumed.state_dict().values()):
            assert torch.equal(want, got), f"{name}, killed after epoch {kill_after}: {key} differs"


def test_saved_state_of_another_configuration_is_cleared_not_resumed(tmp_path):
    approach = APPROACHES["mlora"]
    with pytest.raises(Killed):
        train(approach, tmp_path / "run", kill_after=2)
    assert (tmp_path / "run" / "epoch.pt").is_file()
    RunCheckpoint(tmp_path / "run", {"run": "another configuration"})
    assert not (tmp_path / "run" / "epoch.pt").is_file()
    assert not list((tmp_path / "run").glob("fit-*.pt"))


def test_a_damaged_saved_epoch_trains_that_part_again(tmp_path):
    approach = APPROACHES["base"]
    straight, _, epochs = train(approach)
    with pytest.raises(Killed):
        train(approach, tmp_path / "run", kill_after=2)
    (tmp_path / "run" / "epoch.pt").write_bytes(b"not a checkpoint")
    resumed, _, resumed_epochs = train(approach, tmp_path / "run")
    assert len(resumed_epochs) == len(epochs)
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))


def test_epochs_are_saved_at_most_every_few_seconds_but_every_finished_fit_is(tmp_path):
    from moe_mlora.training.resume import SAVE_EVERY_S

    assert SAVE_EVERY_S > 1
    checkpoint = RunCheckpoint(tmp_path, {"run": "toy"})
    assert not checkpoint.epoch_due()
    checkpoint.save_finished(0, "phase", {"result": {}})
    assert not checkpoint.epoch_due() and (tmp_path / "fit-0.pt").is_file()
    assert RunCheckpoint(tmp_path, {"run": "toy"}, every=0).epoch_due()


def test_state_files_copied_from_another_run_are_cleared_with_a_warning_not_resumed(tmp_path, caplog):
    approach = APPROACHES["base"]
    straight, _, epochs = train(approach, run="this run")
    with pytest.raises(Killed):
        train(approach, tmp_path / "other", kill_after=2, run="another run")
    with pytest.raises(Killed):
        train(approach, tmp_path / "this", kill_after=1, run="this run")
    (tmp_path / "this" / "epoch.pt").write_bytes((tmp_path / "other" / "epoch.pt").read_bytes())
    resumed, _, resumed_epochs = train(approach, tmp_path / "this", run="this run")
    assert len(resumed_epochs) == len(epochs), "a foreign epoch was resumed"
    assert "saved state of another run" in caplog.text
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))


def test_state_that_cannot_be_written_warns_once_and_the_run_trains_on(tmp_path, caplog):
    import os

    if os.geteuid() == 0:  # root writes through read-only modes: stand a file where resume/epoch.pt goes
        folder = tmp_path / "run"
        RunCheckpoint(folder, {"run": "toy"})
        (folder / "epoch.pt").mkdir()
        (folder / "epoch.pt" / "x").write_text("a folder cannot be replaced by a file")
    else:
        folder = tmp_path / "run"
        RunCheckpoint(folder, {"run": "toy"})
        folder.chmod(0o500)
    straight, straight_report, _ = train(APPROACHES["mlora"])
    resumed, report, _ = train(APPROACHES["mlora"], folder)
    assert numbers(report) == numbers(straight_report)
    assert caplog.text.count("cannot save the training state") == 1


def test_a_file_where_the_resume_folder_goes_is_replaced_by_the_folder(tmp_path):
    (tmp_path / "resume").write_text("not a folder")
    checkpoint = RunCheckpoint(tmp_path / "resume", {"run": "toy"})
    checkpoint.save_finished(0, "phase", {"result": {}})
    assert (tmp_path / "resume" / "fit-0.pt").is_file()
