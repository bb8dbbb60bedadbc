"""Our runs beside a published table: the gap column, the Holm-tested Δ against Base, and the known protocol
differences listed exactly when some method lies beyond the tolerance."""

import pandas as pd

from moe_mlora.experiments.published import PUBLISHED, TOLERANCE, PublishedTable, published_markdown


def _records(star_auc: float) -> pd.DataFrame:
    rows = [{"status": "ok", "arm": "base", "seed": seed, "auc": 81.0 + 0.01 * seed, "logloss": 0.52}
            for seed in (1, 2, 3)]
    rows += [{"status": "ok", "arm": "star", "seed": seed, "auc": star_auc + 0.01 * seed, "logloss": 0.53}
             for seed in (1, 2, 3)]
    return pd.DataFrame(rows)


TABLE = PublishedTable("a table", {"star": (0.8096, 0.5258)}, ("their towers have batch normalisation",))


def test_a_method_beyond_the_tolerance_is_named_with_the_protocol_differences():
    text = published_markdown(_records(star_auc=81.56), TABLE)  # mean 0.8158: 0.0062 above 0.8096
    assert "+0.0062 (beyond 0.003)" in text
    assert f"Beyond {TOLERANCE} of the published AUC: STAR." in text
    assert "- their towers have batch normalisation" in text


def test_within_the_tolerance_no_difference_is_listed():
    text = published_markdown(_records(star_auc=80.96), TABLE)  # mean 0.8098: 0.0002 above
    assert "+0.0002 |" in text and "beyond" not in text.lower()
    assert "batch normalisation" not in text


def test_the_scenario_wise_table_names_its_known_differences():
    table = PUBLISHED["scenario-wise-ml1m"]
    assert table.results["star"] == (0.8096, 0.5258)
    assert any("one epoch" in difference for difference in table.differences)


def test_runs_of_another_dataset_or_backbone_are_refused_before_anything_is_written(tmp_path):
    import json
    import shutil

    import pytest

    from moe_mlora.errors import ConfigError
    from moe_mlora.experiments.report import write_report

    from pathlib import Path

    source = sorted((Path(__file__).resolve().parents[2] / "docs/results/ml100k/records").glob("*deepfm-base-s1-*"))[0]
    records = tmp_path / "records"
    shutil.copytree(source, records / source.name)
    with pytest.raises(ConfigError, match="not of the protocol of Scenario-Wise Rec's MovieLens-1M table \\(overall test AUC and logloss\\): dataset is "
                                          "movielens-100k, not table"):
        write_report(records, tmp_path / "out", published="scenario-wise-ml1m")
    assert not (tmp_path / "out" / "report.md").exists()
    assert json.loads((records / source.name / "result.json").read_text())["status"] == "ok"


def test_the_scenario_wise_runs_shipped_follow_its_protocol():
    from pathlib import Path

    from moe_mlora.experiments.report import load_records

    PUBLISHED["scenario-wise-ml1m"].check(load_records(Path(__file__).resolve().parents[2] / "docs/results/scenario-wise/records"))
