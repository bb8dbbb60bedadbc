"""The README's tour runs as written: every line of its tested shell block, then its Python blocks in order."""

import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from moe_mlora.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
TESTED = re.compile(r"<!-- tested[^>]*-->\n```(bash|python)\n(.*?)```", re.S)


def tested_blocks() -> list[tuple[str, str]]:
    return TESTED.findall(README.read_text())


def test_the_readme_has_its_tested_blocks_and_stays_short():
    kinds = [kind for kind, _ in tested_blocks()]
    assert kinds == ["bash", "python", "python"], kinds
    assert len(README.read_text().splitlines()) <= 250


def test_the_readme_tour_runs_as_written(real_data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOE_MLORA_DATA_DIR", str(real_data_dir))
    namespace: dict = {}
    for kind, body in tested_blocks():
        if kind == "bash":
            for line in (line for line in body.splitlines() if line.strip()):
                words = shlex.split(line, comments=True)
                assert words[0] == "moe-mlora", line
                result = CliRunner().invoke(app, [*words[1:], "--no-progress"] if words[1] == "train" else words[1:])
                assert result.exit_code == 0, f"{line}\n{result.output}"
        else:
            exec(compile(body, "README.md", "exec"), namespace)  # noqa: S102 - the README's own snippet
    assert (tmp_path / "runs" / "report.md").is_file()
    assert namespace["record"].ok and len(namespace["predictor"].predict(namespace["rows"])) == 2
