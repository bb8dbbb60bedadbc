import numpy as np
import pytest

from moe_mlora.data import DatasetConfig, load_interactions, prepare_dataset
from moe_mlora.data.stats import domain_statistics
from moe_mlora.data.synthetic import SyntheticTaobaoConfig, generate_synthetic_taobao
from moe_mlora.data.taobao import load_taobao
from moe_mlora.errors import ConfigError, DataError


def embedding_line(identifier, dim=128):
    return f"{identifier}," + " ".join(["0.1"] * dim) + "\n"


@pytest.fixture
def taobao_dir(tmp_path):
    """A tiny Tianchi-format log: 4 themes, user 9 and item 99 lack embeddings, one duplicate click."""
    rng = np.random.default_rng(0)
    clicks = []
    themes = [30, 10, 20, 40]  # order of first appearance differs from numeric order
    for theme in themes:
        for user in range(8):
            for item in rng.choice(np.arange(theme * 10, theme * 10 + 40), size=3, replace=False):
                clicks.append((user, theme, int(item), 1, 1, 1, "20180601000000"))
    clicks.append((9, 30, 300, 1, 1, 1, "20180601000000"))  # user without embedding
    clicks.append((0, 30, 99, 1, 1, 1, "20180601000000"))  # item without embedding
    clicks.append(clicks[0])  # duplicate
    header = "user_id,theme_id,item_id,leaf_cate_id,cate_level1_id,clk_cnt,reach_time\n"
    (tmp_path / "theme_click_log.csv").write_text(header + "".join(",".join(map(str, row)) + "\n" for row in clicks))
    pool = "".join(f"{theme},{item}\n" for theme in themes for item in range(theme * 10, theme * 10 + 60))
    (tmp_path / "theme_item_pool.csv").write_text("theme_id,item_id\n" + pool)
    (tmp_path / "user_embedding.csv").write_text("user_id,emb\n" + "".join(embedding_line(u) for u in range(8)))
    items = [i for theme in themes for i in range(theme * 10, theme * 10 + 60)]
    (tmp_path / "item_embedding.csv").write_text("item_id,emb\n" + "".join(embedding_line(i) for i in items))
    return tmp_path


def test_taobao_keeps_first_themes_by_appearance_and_embedded_rows(taobao_dir):
    table = load_taobao(taobao_dir, n_themes=2)
    assert table.domain_order == ["30", "10"]
    positives = table.frame[table.frame["label"] == 1]
    assert "9" not in set(positives["user_id"]) and "99" not in set(positives["item_id"])
    assert not positives.duplicated(["user_id", "item_id"]).any()
    assert len(positives) == 2 * 8 * 3
    assert any("dropped 2 of" in note for note in table.notes)


def test_taobao_negatives_are_unclicked_pool_items_at_sampled_ratio(taobao_dir):
    table = load_taobao(taobao_dir, n_themes=4, seed=5)
    frame = table.frame
    clicked = set(zip(frame.loc[frame.label == 1, "user_id"], frame.loc[frame.label == 1, "item_id"]))
    negatives = frame[frame.label == 0]
    assert not any(pair in clicked for pair in zip(negatives["user_id"], negatives["item_id"]))
    assert not negatives.duplicated(["user_id", "item_id"]).any()
    for theme, rows in frame.groupby("domain"):
        pool = set(range(int(theme) * 10, int(theme) * 10 + 60))
        assert set(rows.loc[rows.label == 0, "item_id"].astype(int)) <= pool
        per_user = rows.groupby("user_id")["label"].agg(["sum", "size"])
        ratio = per_user["sum"] / (per_user["size"] - per_user["sum"])
        # int(3 / r) negatives for r in [0.2, 0.5] gives between 6 and 15 per user, the same r for a theme.
        assert ratio.nunique() == 1 and 0.19 <= ratio.iloc[0] <= 0.51


def test_taobao_random_theme_choice_is_seeded(taobao_dir):
    first = load_taobao(taobao_dir, n_themes=2, theme_selection="random", seed=1).domain_order
    assert first == load_taobao(taobao_dir, n_themes=2, theme_selection="random", seed=1).domain_order
    choices = {tuple(load_taobao(taobao_dir, n_themes=2, theme_selection="random", seed=s).domain_order) for s in range(8)}
    assert len(choices) > 1


def test_taobao_bad_embedding_row_names_line(taobao_dir):
    path = taobao_dir / "user_embedding.csv"
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = "2,0.1 0.2\n"
    path.write_text("".join(lines))
    with pytest.raises(DataError, match=r"user_embedding\.csv, line 4, column 'emb': expected 128 floats, found 2"):
        load_taobao(taobao_dir, n_themes=2)


def test_taobao_unknown_column_in_header_is_named(taobao_dir):
    path = taobao_dir / "theme_item_pool.csv"
    path.write_text(path.read_text().replace("theme_id,item_id", "theme,item_id", 1))
    with pytest.raises(DataError, match=r"theme_item_pool\.csv, line 1: header .*unknown column\(s\) \['theme'\]"):
        load_taobao(taobao_dir, n_themes=2)


def test_taobao_too_many_themes_is_a_config_error(taobao_dir):
    with pytest.raises(ConfigError, match="asked for 9 themes, the log has 4"):
        load_taobao(taobao_dir, n_themes=9)


def test_synthetic_generator_is_seeded_sparse_and_labelled(tmp_path):
    config = SyntheticTaobaoConfig(n_themes=6, n_users=3000, n_items=8000, pool_size=800)
    generate_synthetic_taobao(tmp_path / "a", config)
    generate_synthetic_taobao(tmp_path / "b", config)
    assert (tmp_path / "a" / "theme_click_log.csv").read_bytes() == (tmp_path / "b" / "theme_click_log.csv").read_bytes()
    table = load_taobao(tmp_path / "a", n_themes=5, synthetic=True, name="taobao-synthetic")
    assert table.display_name.endswith("[SYNTHETIC]") and "SYNTHETIC" in table.notes[0]
    overall = domain_statistics(table)[-1]
    assert overall.sparsity > 0.99
    assert 0.15 < overall.positive_rate < 0.4


def test_synthetic_taobao_dataset_prepares_through_the_registry():
    dataset = prepare_dataset(DatasetConfig("taobao-synthetic", n_themes=10))
    assert dataset.synthetic and dataset.spec.n_domains == 10
    assert dataset.display_name == "taobao-synthetic [SYNTHETIC]"


def test_missing_real_taobao_files_give_a_clear_message(tmp_path):
    with pytest.raises(DataError, match="Tianchi"):
        load_interactions(DatasetConfig("taobao"), tmp_path)
