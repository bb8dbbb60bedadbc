"""The run record: a typed, versioned result.json, written in one place and read in one place.

Every record names the code that produced it (git commit, and whether the tree had uncommitted changes),
the library versions and the machine. `SCHEMA_VERSION` grows whenever the record's meaning changes; a
sweep reruns a run whose record has an older schema, and `report` leaves such records out (and says so).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import subprocess
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from moe_mlora import __version__
from moe_mlora.files import write_text_atomic
from moe_mlora.run_config import RunConfig
from moe_mlora.training.diagnostics import Diagnostics
from moe_mlora.training.loop import PhaseResult
from moe_mlora.training.metrics import Evaluation

SCHEMA_VERSION = 4  # 4: MoE-MLoRA's "uniform" gate starts exactly uniform, the authors-code gate is drawn as
# Keras draws it, and MoE records carry the gate's start/end own-expert weight and the gate phase's chosen epoch
# 3: MoE-MLoRA diagnostics, gate variants and schedules in the approach
RESULT_FILE = "result.json"
# The oldest schema whose records still mean what today's code computes, per approach: what changed in schema 4
# touches MoE-MLoRA alone, so Base and MLoRA records of schema 3 stay current (and a sweep keeps them).
CURRENT_SINCE = {"base": 3, "mlora": 3, "moe-mlora": 4}


@lru_cache(maxsize=1)
def code_version() -> dict:
    """The git commit of this package's source and whether that source has uncommitted changes (None outside
    a checkout). Only the package's own files count: editing docs or tests does not change a run."""
    source = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", str(source.parent)) if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


@lru_cache(maxsize=1)
def source_digest() -> str:
    """A hash of this package's Python source: what saved training state must match to be resumed (a commit
    alone misses uncommitted edits, and an installed package has none)."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def library_versions() -> dict:
    import numpy
    import pandas
    import sklearn

    return {"moe_mlora": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "pandas": pandas.__version__, "scikit-learn": sklearn.__version__}


# CPU flags that select different kernels (and so can change the last digits of a float result).
_KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_bf16",
                 "amx_tile", "avx_vnni")


@lru_cache(maxsize=1)
def _cpu() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                present = set(value.split())
                flags = [flag for flag in _KERNEL_FLAGS if flag in present]
    except OSError:
        pass
    return model, flags


def numerics_description() -> dict:
    """What can change a run's last digits besides the code: the CPU and its kernel-selecting flags, the
    kernels torch dispatches to, its BLAS and oneDNN builds, and the thread count."""
    model, flags = _cpu()
    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=([^,\s]+)", config)
    onednn = next((line.strip().lstrip("- ") for line in config.splitlines() if "MKL-DNN" in line or "oneDNN" in line),
                  "none")
    return {"cpu_model": model, "cpu_flags": flags, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "blas": blas.group(1) if blas else "unknown", "onednn": onednn, "threads": torch.get_num_threads()}


def machine_description() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "numerics": numerics_description()}


@dataclass
class RunRecord:
    status: str  # "ok" | "failed"
    config: RunConfig
    key: str = ""
    label: str = ""
    schema: int = SCHEMA_VERSION
    dataset: str = ""
    synthetic: bool = False
    n_domains: int = 0
    test: Evaluation | None = None
    valid: Evaluation | None = None
    phases: list[PhaseResult] = field(default_factory=list)
    diagnostics: Diagnostics | None = None  # MoE-MLoRA only
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    error: str = ""
    traceback: str = ""
    code: dict = field(default_factory=code_version)
    versions: dict = field(default_factory=library_versions)
    machine: dict = field(default_factory=machine_description)

    def __post_init__(self) -> None:
        self.key = self.key or self.config.key()
        self.label = self.label or self.config.label

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def current(self) -> bool:
        """Whether the record means what today's code would compute (see CURRENT_SINCE)."""
        return CURRENT_SINCE.get(self.config.approach.approach, SCHEMA_VERSION) <= self.schema <= SCHEMA_VERSION

    def to_dict(self) -> dict:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["config"] = self.config.to_dict()
        data["test"] = self.test.to_dict() if self.test else None
        data["valid"] = self.valid.to_dict() if self.valid else None
        data["phases"] = [asdict(phase) for phase in self.phases]
        data["diagnostics"] = self.diagnostics.to_dict() if self.diagnostics else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RunRecord":
        """A record of the current schema; older ones keep only what identifies them (status, key, config)."""
        schema = data.get("schema", 1)
        approach = (data.get("config") or {}).get("approach", {}).get("approach")
        if not CURRENT_SINCE.get(approach, SCHEMA_VERSION) <= schema <= SCHEMA_VERSION:
            return cls(status=data.get("status", "unknown"), config=_old_config(data["config"]),
                       key=data.get("key", ""), label=data.get("label", ""), schema=schema,
                       code={}, versions={}, machine={})
        fields = dict(data)
        fields["config"] = RunConfig.from_dict(data["config"])
        fields["test"] = Evaluation.from_dict(data["test"]) if data.get("test") else None
        fields["valid"] = Evaluation.from_dict(data["valid"]) if data.get("valid") else None
        fields["phases"] = [PhaseResult.from_dict(phase) for phase in data.get("phases", [])]
        fields["diagnostics"] = Diagnostics.from_dict(data["diagnostics"]) if data.get("diagnostics") else None
        return cls(**fields)

    def write(self, folder: Path) -> Path:
        return write_json(folder / RESULT_FILE, self.to_dict())

    @classmethod
    def read(cls, folder: Path) -> "RunRecord | None":
        """The record in `folder`; None when there is none or it cannot be read as one."""
        path = folder / RESULT_FILE
        if not path.is_file():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


def _old_config(data: dict) -> RunConfig:
    """An older record's config, as far as today's RunConfig accepts it (else the defaults stand in)."""
    try:
        return RunConfig.from_dict(data)
    except Exception:  # noqa: BLE001 - an old record only needs to be recognised as old
        return RunConfig()


def _finite(value):
    """NaN and infinities become null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, payload: dict) -> Path:
    """Write atomically (see moe_mlora.files), with NaN written as null."""
    return write_text_atomic(path, json.dumps(_finite(payload), indent=2, default=str))
