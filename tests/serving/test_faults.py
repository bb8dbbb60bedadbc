"""Faults at the edges where a run folder is read back or an output is written: each is a one-line error
naming the file (exit 2), found before any work, with nothing written outside the runs folder."""

from __future__ import annotations

import os
import shutil
import stat

import pytest
from typer.testing import CliRunner

from serving.conftest import make_table
from moe_mlora.cli import app

ROOT = os.geteuid() == 0  # root writes into read-only folders: those cases cannot be made here


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def run_copy(moe_run, tmp_path):
    folder = tmp_path / "runs" / moe_run[0].name
    shutil.copytree(moe_run[0], folder)
    new = tmp_path / "inputs" / "east.csv"
    new.parent.mkdir()
    make_table(400, seed=3, domains=("east",)).to_csv(new, index=False)
    rows = tmp_path / "inputs" / "rows.csv"
    make_table(50, seed=4).drop(columns="clicked").to_csv(rows, index=False)
    return folder, new, rows


def make_read_only(path):
    path.chmod(stat.S_IRUSR | stat.S_IXUSR)


CASES = {
    # damaged weights
    "predict, truncated model.safetensors": (lambda f: truncate(f / "model.safetensors"),
                                             ["predict", "{run}", "--input", "{rows}", "--output", "{out}/s.csv"],
                                             "model.safetensors: damaged"),
    "predict, truncated adapter.safetensors": (lambda f: truncate(f / "adapter.safetensors"),
                                               ["predict", "{run}", "--input", "{rows}", "--output", "{out}/s.csv"],
                                               "adapter.safetensors: damaged"),
    "export, truncated model.safetensors": (lambda f: truncate(f / "model.safetensors"),
                                            ["export", "{run}", "--format", "torch-export"], "model.safetensors: damaged"),
    "add-domain, truncated adapter.safetensors": (lambda f: truncate(f / "adapter.safetensors"),
                                                  ["add-domain", "{run}", "--table", "{new}", "--domain", "east"],
                                                  "adapter.safetensors: damaged"),
    # odd output paths
    "predict, output names a folder": (lambda f: None, ["predict", "{run}", "--input", "{rows}", "--output", "{out}"],
                                       "is a folder; name the output file"),
    "export, output names a folder": (lambda f: None, ["export", "{run}", "--format", "torch-export", "--output", "{out}"],
                                      "is a folder; name the output file"),
    "add-domain, output names a file": (lambda f: None,
                                        ["add-domain", "{run}", "--table", "{new}", "--domain", "east", "--output", "{rows}"],
                                        "is a file; name a folder"),
    # an output whose folder cannot be made (a file stands where it would be): testable as root too
    "predict, output folder is a file": (lambda f: None, ["predict", "{run}", "--input", "{rows}", "--output",
                                                          "{rows}/s.csv"], "cannot write there"),
    "export, output folder is a file": (lambda f: None, ["export", "{run}", "--format", "torch-export", "--output",
                                                         "{rows}/m.pt2"], "cannot write there"),
    "add-domain, output under a file": (lambda f: None, ["add-domain", "{run}", "--table", "{new}", "--domain", "east",
                                                         "--output", "{rows}/grown"], "cannot write there"),
}
if not ROOT:
    CASES |= {
        "predict, read-only output folder": (lambda f: make_read_only(f.parent.parent / "out"),
                                             ["predict", "{run}", "--input", "{rows}", "--output", "{out}/s.csv"],
                                             "cannot write there"),
        "export, read-only run folder": (lambda f: make_read_only(f), ["export", "{run}", "--format", "torch-export"],
                                         "cannot write there"),
        "add-domain, read-only output folder": (lambda f: make_read_only(f.parent.parent / "out"),
                                                ["add-domain", "{run}", "--table", "{new}", "--domain", "east",
                                                 "--output", "{out}/grown"], "cannot write there"),
    }


@pytest.mark.parametrize("name", list(CASES))
def test_a_fault_at_the_edges_is_one_line_naming_the_file(name, run_copy, tmp_path):
    folder, new, rows = run_copy
    out = tmp_path / "out"
    out.mkdir()
    fault, args, message = CASES[name]
    fault(folder)
    before = sorted(p for p in tmp_path.rglob("*"))
    args = [a.format(run=folder, rows=rows, new=new, out=out) for a in args]
    try:
        result = CliRunner().invoke(app, args)
    finally:
        for path in (folder, out):
            path.chmod(0o755)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output
    added = sorted(set(tmp_path.rglob("*")) - set(before))
    assert all(path.is_dir() and not any(path.iterdir()) for path in added), added  # at most an empty folder
