"""Curves to look at: every run folder gets `epochs.csv` (one row per epoch of every phase), and with a
log folder, TensorBoard event files written as training goes (`pip install 'moe-mlora[tensorboard]'`)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from moe_mlora.errors import ConfigError
from moe_mlora.files import write_text_atomic
from moe_mlora.training.loop import EpochCallback, EpochRecord, PhaseResult

EPOCHS_FILE = "epochs.csv"
EPOCH_COLUMNS = ("phase", "epoch", "train_loss", "valid_score", "select_by", "seconds", "rows_per_second")


def write_epochs_csv(folder: Path, phases: list[PhaseResult]) -> Path:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EPOCH_COLUMNS)
    for phase in phases:
        for record in phase.history:
            writer.writerow([phase.phase, record.epoch, f"{record.train_loss:.6f}", f"{record.valid_score:.6f}",
                             phase.select_by, f"{record.seconds:.3f}", f"{record.rows_per_second:.0f}"])
    return write_text_atomic(folder / EPOCHS_FILE, out.getvalue())


class TensorBoardLog:
    """Scalars per epoch under `<log_dir>/<run>`: train loss and validation score, one chart per phase."""

    def __init__(self, log_dir: Path, run_name: str) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--log-dir needs TensorBoard: pip install 'moe-mlora[tensorboard]'") from None
        self.writer = SummaryWriter(log_dir=str(Path(log_dir) / run_name))

    def callback(self, then: EpochCallback | None) -> EpochCallback:
        def on_epoch(phase: str, record: EpochRecord) -> None:
            self.writer.add_scalar(f"{phase}/train_loss", record.train_loss, record.epoch)
            self.writer.add_scalar(f"{phase}/valid_score", record.valid_score, record.epoch)
            self.writer.add_scalar(f"{phase}/rows_per_second", record.rows_per_second, record.epoch)
            if then:
                then(phase, record)

        return on_epoch

    def close(self) -> None:
        self.writer.close()
