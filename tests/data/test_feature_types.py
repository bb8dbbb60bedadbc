"""Numeric and multi-valued features, time and given splits: fitted on the training rows only, accepted by
every backbone in the places their reference models put them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from moe_mlora.data import DatasetConfig, prepare_dataset
from moe_mlora.data.feature_types import PAD, encode_bags, fit_bag_vocabulary, longest_bag
from moe_mlora.data.split import TEST, TRAIN, VALID
from moe_mlora.errors import ConfigError, DataError
from moe_mlora.models import MODELS, build_model


def table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    domain = rng.choice(["a", "b"], n)
    return pd.DataFrame({
        "user": [f"u{i}" for i in rng.integers(0, 300, n)], "item": [f"i{i}" for i in rng.integers(0, 30, n)],
        "age": np.where(rng.random(n) < 0.1, "", rng.integers(18, 70, n).astype(str)),
        "genres": ["|".join(rng.choice(["Action", "Comedy", "Drama", "Horror"], rng.integers(0, 4), replace=False))
                   for _ in range(n)],
        "ts": rng.permutation(n) * 60 + 1_600_000_000, "part": rng.choice(["train", "valid", "test"], n, p=[.6, .2, .2]),
        "region": domain, "click": (rng.random(n) < 0.3).astype(int),
    })


def config(path, **options) -> DatasetConfig:
    return DatasetConfig("table", split_by="region", features=("user", "item"), table_path=str(path),
                         label_column="click", **options)


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "t.csv"
    table().to_csv(path, index=False)
    return path


def test_numeric_columns_are_standardised_with_training_statistics_and_missing_cells_flagged(csv):
    dataset = prepare_dataset(config(csv, numeric=("age",)))
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False)["age"]
    training = dataset.split == TRAIN
    known = raw[training & (raw != "").to_numpy()].astype(float)
    (column,) = dataset.numeric
    assert column.mean == pytest.approx(known.mean()) and column.std == pytest.approx(known.std(ddof=0))
    missing = (raw == "").to_numpy()
    assert np.array_equal(dataset.dense[:, 1], missing.astype(np.float32))
    assert np.all(dataset.dense[missing, 0] == 0)
    assert dataset.dense[training & ~missing, 0].mean() == pytest.approx(0, abs=1e-5)


def test_a_numeric_column_with_text_names_the_line_and_column(tmp_path):
    frame = table()
    frame.loc[7, "age"] = "forty"
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"t\.csv, line 9, column 'age': 'forty' is not a number"):
        prepare_dataset(config(tmp_path / "t.csv", numeric=("age",)))


def test_multi_valued_cells_become_padded_token_codes_with_an_oov_code():
    column = pd.Series(["Action|Comedy", "", "Drama", "Action|Western"])
    training = np.array([True, True, True, False])
    vocabulary = fit_bag_vocabulary(column, training, min_count=1, separator="|")
    assert vocabulary.values == ("Action", "Comedy", "Drama") and vocabulary.oov
    assert longest_bag(column, "|") == 2
    codes = encode_bags(column, vocabulary, "|", 2)
    assert codes.tolist() == [[1, 2], [PAD, PAD], [3, PAD], [1, 0]]  # Western: unseen in training -> OOV
    assert encode_bags(column, vocabulary, "|", 1).tolist() == [[1], [PAD], [3], [1]]  # past the length: dropped


def test_a_time_split_puts_each_domains_latest_rows_in_test_and_fits_vocabularies_on_training_rows(csv):
    dataset = prepare_dataset(config(csv, split="time:ts"))
    times = pd.read_csv(csv)["ts"].to_numpy()
    for domain in range(2):
        mine = dataset.domains == domain
        train, valid, test = (times[mine & (dataset.split == part)] for part in (TRAIN, VALID, TEST))
        assert train.max() < valid.min() and valid.max() < test.min()
        assert len(test) == pytest.approx(0.2 * mine.sum(), abs=1)
    users = pd.read_csv(csv)["user"]
    only_later = set(users[dataset.split != TRAIN]) - set(users[dataset.split == TRAIN])
    later_rows = users.isin(only_later).to_numpy()
    assert only_later and (dataset.codes[later_rows, 0] == 0).all()  # first seen after training: the OOV row


def test_a_global_time_split_and_a_given_split_column(csv):
    times = pd.read_csv(csv)["ts"].to_numpy()
    glob = prepare_dataset(config(csv, split="time:ts:global"))
    assert times[glob.split == TRAIN].max() < times[glob.split == TEST].min()
    given = prepare_dataset(config(csv, split="column:part"))
    expected = pd.read_csv(csv)["part"].map({"train": TRAIN, "valid": VALID, "test": TEST}).to_numpy()
    assert np.array_equal(given.split, expected)


@pytest.mark.parametrize("change, message", [
    (lambda f: f.assign(ts=f.ts.astype(str).where(f.index != 4, "yesterday-ish")), r"line 6, column 'ts': 'yesterday-ish' is neither"),
    (lambda f: f.assign(part=f.part.where(f.index != 2, "holdout")), r"line 4, column 'part': 'holdout' is not a part"),
    (lambda f: f.assign(ts=1_600_000_000), r"line 2, column 'ts': every row has the same time"),
    (lambda f: f.assign(part=f.part.replace("test", "valid")), r"t\.csv, column 'part': no row is labelled test"),
    (lambda f: f.assign(part="train"), r"column 'part': no row is labelled valid or test"),
])
def test_split_columns_that_do_not_parse_name_the_cell(tmp_path, change, message):
    change(table()).to_csv(tmp_path / "t.csv", index=False)
    split = "time:ts" if "ts" in message else "column:part"
    with pytest.raises(DataError, match=message):
        prepare_dataset(config(tmp_path / "t.csv", split=split))


@pytest.mark.parametrize("options, message", [
    (dict(split="time"), "--split must be random, time:COLUMN"),
    (dict(split="shuffle:x"), "--split must be random, time:COLUMN"),
    (dict(numeric=("user",)), "must be distinct"),
])
def test_bad_feature_or_split_options_are_refused(csv, options, message):
    with pytest.raises(ConfigError, match=message):
        config(csv, **options)


def test_numeric_features_and_time_splits_are_for_user_tables():
    with pytest.raises(ConfigError, match="applies to dataset 'table'"):
        DatasetConfig("movielens-100k", numeric=("age",))
    with pytest.raises(ConfigError, match="applies to dataset 'table'"):
        DatasetConfig("movielens-100k", split="time:timestamp")


@pytest.mark.parametrize("name", list(MODELS))
def test_every_backbone_uses_dense_and_multi_valued_inputs(csv, name):
    dataset = prepare_dataset(config(csv, numeric=("age",), multi_valued=("genres",)))
    part = dataset.part("train").select(slice(0, 64))
    torch.manual_seed(0)
    model = build_model(name, dataset.spec).eval()
    base = model(*part.model_inputs())
    dense = part.dense.clone()
    dense[:, 0] += 1.0
    bags = part.bags.clone()
    bags[:, 0, 0] = (bags[:, 0, 0] + 1) % dataset.spec.bag_cardinalities[0]
    with torch.no_grad():
        assert not torch.allclose(model(part.codes, part.domains, dense, part.bags), base)  # dense reaches the model
        assert not torch.allclose(model(part.codes, part.domains, part.dense, bags), base)  # so do the bags
    model.train()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(*part.model_inputs()), part.labels)
    loss.backward()
    assert model.bags.table.weight.grad.abs().sum() > 0 and torch.isfinite(loss)
    with pytest.raises(ConfigError, match="takes dense inputs"):
        model(part.codes, part.domains)
