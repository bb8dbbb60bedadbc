"""The docs site builds in strict mode: a broken link, a missing page or a reference to a moved object fails."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_docs_site_builds_in_strict_mode(tmp_path):
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("mkdocs is not installed: `make test` installs it with the dev extra")
    done = subprocess.run([str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    assert "config_from_settings" in reference and "RunConfig" in reference and "Predictor" in reference


def test_the_methods_guides_scope_table_is_the_one_the_code_generates():
    from moe_mlora.experiments.scope import guide_table

    page = (Path(__file__).parents[1] / "docs" / "guides" / "methods.md").read_text()
    table = page.split("<!-- scope-table -->\n", 1)[1].split("\n<!-- /scope-table -->", 1)[0]
    assert table == guide_table(), "regenerate: docs/guides/methods.md's scope table from moe_mlora.experiments.scope.guide_table()"


def test_the_scope_reader_sees_what_each_seam_reaches():
    from moe_mlora.experiments.scope import scope

    assert scope("mlora", "deepfm") == (["tower"], ["output layer", "FM", "linear term"])
    assert scope("star[output=domain]", "dcn")[1] == []
    assert scope("epnet", "dcn") == (["embeddings (so every branch's input)"], ["output layer", "linear term"])
    assert scope("separate", "xdeepfm") == (["everything (a model per domain)"], [])


def test_every_registered_method_has_its_docstring_on_the_methods_reference_page():
    from moe_mlora.methods import METHODS

    page = (REPO / "docs" / "reference-methods.md").read_text()
    for method in METHODS.values():
        module = method.attach.__module__ if method.attach else "moe_mlora.methods.lora"
        assert f"::: {module}\n" in page, f"{method.name}: add ::: {module} to docs/reference-methods.md"
        if method.settings is not None:
            assert f"::: {method.settings.__module__}.{method.settings.__name__}" in page, method.name
