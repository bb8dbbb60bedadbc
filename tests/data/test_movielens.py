import numpy as np
import pandas as pd
import pytest

from moe_mlora.data import DatasetConfig, load_interactions, prepare_dataset
from moe_mlora.data.movielens import AGE_GROUPS, age_group_of
from moe_mlora.data.stats import domain_statistics
from moe_mlora.errors import ConfigError, DataError


@pytest.mark.parametrize("split_by, n_domains", [("gender", 2), ("age", 7), ("occupation", 21)])
def test_movielens_100k_real_files_give_every_rating_one_domain(real_data_dir, split_by, n_domains):
    table = load_interactions(DatasetConfig("movielens-100k", split_by), real_data_dir)
    assert len(table.frame) == 100_000
    assert table.n_domains == n_domains
    stats = domain_statistics(table)
    assert sum(entry.rows for entry in stats[:-1]) == 100_000
    assert stats[-1].users == 943 and stats[-1].items == 1682


def test_movielens_100k_click_label_is_rating_five(real_data_dir):
    table = load_interactions(DatasetConfig("movielens-100k", "gender"), real_data_dir)
    # The dataset README counts 21,201 ratings of 5.
    assert int(table.frame["label"].sum()) == 21_201


def test_movielens_100k_gender_domains_follow_user_file(real_data_dir):
    table = load_interactions(DatasetConfig("movielens-100k", "gender", features=("user_id", "gender")), real_data_dir)
    users = pd.read_csv(real_data_dir / "ml-100k" / "u.user", sep="|", header=None, names=["id", "age", "g", "o", "z"])
    expected = dict(zip(users["id"].astype(str), users["g"]))
    assert (table.frame["user_id"].map(expected) == table.frame["domain"]).all()
    assert table.domain_order == ["F", "M"]


def test_the_papers_vocabulary_codes_ids_by_their_rank_among_every_rows_sorted_values(real_data_dir):
    """The authors' encoding (a sorted LabelEncoder over every row): an id's code is its rank among the
    distinct ids of u.data, read here straight from the file; the loader holds ids as text, so they sort
    as text (user 10 follows user 1)."""
    dataset = prepare_dataset(DatasetConfig("movielens-100k", "gender"), real_data_dir)
    ratings = pd.read_csv(real_data_dir / "ml-100k" / "u.data", sep="\t", header=None, names=["user", "item", "r", "t"])
    for field, column in enumerate(("user", "item")):
        ids = np.sort(ratings[column].astype(str).unique())
        assert dataset.vocabularies[field].values == tuple(ids)
        counts = ratings[column].astype(str).value_counts().reindex(ids).to_numpy()
        assert np.bincount(dataset.codes[:, field], minlength=len(ids)).tolist() == counts.tolist()
    assert np.array_equal(dataset.codes[:, 2], dataset.domains)  # the domain field's code is the domain id


def test_ages_bucket_into_the_seven_ml1m_groups():
    ages = np.array([7, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73])
    assert age_group_of(ages).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    assert len(AGE_GROUPS) == 7


def test_movielens_1m_loader_reads_official_format(ml1m_dir):
    table = load_interactions(DatasetConfig("movielens-1m", "occupation", verify_checksums=False), ml1m_dir)
    assert len(table.frame) == 20_000
    assert table.n_domains <= 21
    raw = (ml1m_dir / "ml-1m" / "ratings.dat").read_text().splitlines()
    fives = sum(1 for line in raw if line.split("::")[2] == "5")
    assert int(table.frame["label"].sum()) == fives


def test_movielens_1m_age_domains_use_ids_0_to_6(ml1m_dir):
    dataset = prepare_dataset(DatasetConfig("movielens-1m", "age", verify_checksums=False), ml1m_dir)
    assert dataset.spec.domain_names == tuple(AGE_GROUPS)
    assert set(np.unique(dataset.domains)) <= set(range(7))


def test_movielens_1m_checksum_mismatch_is_reported(ml1m_dir):
    with pytest.raises(DataError, match=r"ratings\.dat: checksum mismatch"):
        load_interactions(DatasetConfig("movielens-1m", "gender"), ml1m_dir)


def test_movielens_1m_malformed_row_names_file_and_line(ml1m_dir):
    ratings = ml1m_dir / "ml-1m" / "ratings.dat"
    lines = ratings.read_text().splitlines()
    lines[41] = "1::2::x::3"
    ratings.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"ratings\.dat, line 42, column 'rating': expected an integer"):
        load_interactions(DatasetConfig("movielens-1m", "gender", verify_checksums=False), ml1m_dir)


def test_movielens_1m_row_with_missing_field_is_an_error(ml1m_dir):
    ratings = ml1m_dir / "ml-1m" / "ratings.dat"
    lines = ratings.read_text().splitlines()
    lines[9] = "1::2::3"
    ratings.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"ratings\.dat, line 10"):
        load_interactions(DatasetConfig("movielens-1m", "gender", verify_checksums=False), ml1m_dir)


def test_rating_of_unknown_user_is_an_error_not_a_dropped_row(ml1m_dir):
    ratings = ml1m_dir / "ml-1m" / "ratings.dat"
    with ratings.open("a") as handle:
        handle.write("999999::1::5::1\n")
    with pytest.raises(DataError, match="user_id 999999 is not in the users file"):
        load_interactions(DatasetConfig("movielens-1m", "gender", verify_checksums=False), ml1m_dir)


def test_malformed_100k_row_names_file_and_line(tmp_path, real_data_dir):
    import shutil
    folder = tmp_path / "ml-100k"
    shutil.copytree(real_data_dir / "ml-100k", folder)
    lines = (folder / "u.data").read_text().splitlines()
    lines[6] = lines[6] + "\t99"
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"u\.data: malformed row \(Expected 4 fields in line 7, saw 5\)"):
        load_interactions(DatasetConfig("movielens-100k", "gender", verify_checksums=False), tmp_path)


def test_unknown_split_field_or_feature_is_a_config_error(real_data_dir):
    with pytest.raises(ConfigError, match="cannot split by 'zip'"):
        load_interactions(DatasetConfig("movielens-100k", "zip"), real_data_dir)
    with pytest.raises(ConfigError, match="unknown feature"):
        load_interactions(DatasetConfig("movielens-100k", "gender", features=("user_id", "colour")), real_data_dir)


def test_extra_features_are_encoded_as_fields(real_data_dir):
    config = DatasetConfig("movielens-100k", "gender", features=("user_id", "item_id", "age", "occupation", "genre"))
    dataset = prepare_dataset(config, real_data_dir)
    assert dataset.spec.field_names == ("user_id", "item_id", "age", "occupation", "genre", "domain")
    assert dataset.spec.cardinalities[2] == 7 and dataset.spec.cardinalities[3] == 21


@pytest.mark.parametrize("edit, message", [
    (lambda lines: lines[:4] + ["1::2::7::3"] + lines[5:], r"ratings line 5: rating 7 is outside 1\.\.5"),
    (lambda lines: lines[:4] + ["1::2::0::3"] + lines[5:], r"ratings line 5: rating 0 is outside 1\.\.5"),
    (lambda lines: lines + [lines[10]], r"ratings line \d+: user \d+ rates movie \d+ a second time"),
    (lambda lines: [], "the ratings file has no rows"),
    (lambda lines: lines[:-1] + [lines[-1][:5]], r"ratings\.dat, line \d+"),  # cut mid-row
], ids=["rating-7", "rating-0", "duplicate", "empty", "truncated"])
def test_unchecksummed_movielens_files_are_held_to_their_format(ml1m_dir, edit, message):
    ratings = ml1m_dir / "ml-1m" / "ratings.dat"
    lines = edit(ratings.read_text().splitlines())
    ratings.write_text("".join(line + "\n" for line in lines))
    with pytest.raises(DataError, match=message):
        load_interactions(DatasetConfig("movielens-1m", "gender", verify_checksums=False), ml1m_dir)


@pytest.mark.parametrize("cut", [3, 12], ids=["mid-field", "mid-timestamp"])
def test_a_100k_ratings_file_cut_mid_line_is_an_error_even_without_checksums(tmp_path, real_data_dir, cut):
    import shutil
    folder = tmp_path / "ml-100k"
    shutil.copytree(real_data_dir / "ml-100k", folder)
    text = (folder / "u.data").read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[-1]
    (folder / "u.data").write_text(text[: len(text) - 1 - len(last) + cut])  # the last row cut `cut` characters in
    with pytest.raises(DataError, match=r"u\.data, line 100000: the file ends mid-line"):
        load_interactions(DatasetConfig("movielens-100k", "gender", verify_checksums=False), tmp_path)
