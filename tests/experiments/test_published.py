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
