"""Resuming a killed run where it stood: the training state, saved as it trains.

A run that has a folder keeps `resume/` there while it trains. After an epoch of a `fit` (a phase, or one
expert's pass of it), at most every SAVE_EVERY_S seconds, `epoch.pt` holds the model, the optimizer, both
random streams (dropout, batch order) and the loop's bookkeeping; after every finished fit, `fit-<n>.pt` holds
its result and the model and dropout stream as it left them. The same run started again (same configuration,
same code, same reused backbone) replays its finished fits from their saved ends and continues the unfinished
one after its last saved epoch, so its numbers equal an uninterrupted run's bitwise (tests kill every schedule
mid-way). Anything else in `resume/` (another configuration, another commit, a damaged file, a state file
copied from another run: every file names the run it belongs to) is cleared, or trained again, and never
resumed. The folder goes once the run's record is written.

Saving is best effort: where the state cannot be written (a full disk, a read-only `resume/`), the run says so
once and trains on without saving it (it then cannot resume, but loses nothing else).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from moe_mlora.files import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

RESUME_FOLDER = "resume"
FORMAT = 1
SAVE_EVERY_S = 10.0  # an epoch's state is saved at most this often (every finished fit's end is saved)
_IDENTITY, _EPOCH = "identity.json", "epoch.pt"


def rng_state(device: torch.device) -> dict:
    """The dropout stream: torch's global generator (and the device's, on CUDA)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _plain(value):
    """`value` with numpy scalars as Python numbers: a checkpoint is read with weights_only, which takes tensors
    and Python's own types only."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value.item() if isinstance(value, np.generic) else value


class RunCheckpoint:
    """One run's saved training state. `fit` asks it, in call order, for each fit's finished end or its last
    epoch, and gives it the same after every epoch and at the end."""

    def __init__(self, folder: Path, identity: dict, every: float | None = None) -> None:
        self.folder, self.calls = folder, 0
        self.replayed: list[str] = []  # the fits taken from their saved ends, then where training went on
        self.continued: str | None = None
        self.every = SAVE_EVERY_S if every is None else every
        self.last_saved = time.monotonic()
        self.saving = True  # off after the first failed write (one warning), so training goes on unsaved
        identity = json.dumps({"format": FORMAT, **identity}, indent=1, sort_keys=True, default=str)
        self.run = hashlib.sha256(identity.encode()).hexdigest()[:16]  # every saved file carries it
        if self._saved_identity() != json.loads(identity):  # compared as read back: tuples are lists there
            if self.folder.exists() or self.folder.is_symlink():
                log.info("%s: saved training state of another configuration or code; starting afresh", folder)
            self.clear()
            self._write(lambda: write_text_atomic(folder / _IDENTITY, identity))
        elif (folder / _EPOCH).is_file() or any(folder.glob("fit-*.pt")):
            log.info("%s: resuming the run from its saved training state", folder)

    def _saved_identity(self) -> dict | None:
        try:
            return json.loads((self.folder / _IDENTITY).read_text())
        except (OSError, ValueError):
            return None

    def next_fit(self, label: str) -> tuple[int, dict | None, dict | None]:
        """This fit's number in the run, its saved end (when it finished) and its last saved epoch (when it was
        under way). A saved state whose label differs from this fit's (the schedule changed) is ignored."""
        index, self.calls = self.calls, self.calls + 1
        finished = self._load(self.folder / f"fit-{index}.pt", label)
        epoch = None if finished else self._load(self.folder / _EPOCH, label)
        epoch = epoch if epoch is not None and epoch.get("fit") == index else None
        if finished is not None:
            self.replayed.append(label)
        elif epoch is not None:
            self.continued = f"{label} after epoch {epoch['epoch']}"
        return index, finished, epoch

    def resumed(self) -> str | None:
        """What this attempt took from a killed one's saved state, in words (None: it trained from the start)."""
        parts = ([f"{len(self.replayed)} finished fit(s) replayed ({', '.join(self.replayed)})"] if self.replayed
                 else []) + ([f"continued {self.continued}"] if self.continued else [])
        return "resumed from the saved training state of a killed attempt: " + "; ".join(parts) if parts else None

    def _load(self, path: Path, label: str) -> dict | None:
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a damaged file only means the work it held is done again
            log.warning("%s: unreadable saved state (%s); that part of the run trains again", path, exc)
            return None
        if not isinstance(state, dict) or state.get("run") != self.run:
            log.warning("%s: saved state of another run (copied here?); cleared, that part of the run trains again",
                        path)
            path.unlink(missing_ok=True)
            return None
        return state if state.get("label") == label else None

    def epoch_due(self) -> bool:
        """Whether this epoch's state is to be saved: `every` seconds after the last save (short epochs would
        spend a few percent of the run saving; a kill loses at most that much more)."""
        return time.monotonic() - self.last_saved >= self.every

    def save_epoch(self, index: int, label: str, state: dict) -> None:
        self._save(self.folder / _EPOCH, {"fit": index, "label": label, **state})

    def save_finished(self, index: int, label: str, state: dict) -> None:
        self._save(self.folder / f"fit-{index}.pt", {"label": label, **state})
        self._write(lambda: (self.folder / _EPOCH).unlink(missing_ok=True))

    def _save(self, path: Path, state: dict) -> None:
        def save() -> None:
            with atomic_path(path) as temporary:
                torch.save(_plain({"run": self.run, **state}), temporary)

        self._write(save)
        self.last_saved = time.monotonic()

    def _write(self, write) -> None:
        """Do one write of the saved state; the first that fails turns saving off with one warning."""
        if not self.saving:
            return
        try:
            write()
        except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as a RuntimeError
            self.saving = False
            log.warning("%s: cannot save the training state (%s); the run trains on without it (a kill now "
                        "restarts it from the beginning)", self.folder, exc.strerror or exc)

    def clear(self) -> None:
        if self.folder.is_symlink() or self.folder.is_file():  # not a folder of ours: e.g. a file named resume
            try:
                self.folder.unlink()
            except OSError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)
