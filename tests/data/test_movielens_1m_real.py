"""MovieLens-1M as a first-class dataset, on the real GroupLens files (skipped where they are absent).

Oracles: the paper's published figures (1,000,209 ratings, sparsity 0.9553, positive rate 0.2263) and
counts computed here straight from the raw files with pandas, independently of the loader.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moe_mlora.data import DatasetConfig, load_interactions, prepare_dataset
from moe_mlora.data.stats import domain_statistics

AGE_ORDER = [1, 18, 25, 35, 45, 50, 56]  # the ML-1M age codes, in the paper's domain order 0..6


@pytest.fixture(scope="module")
def ml1m_dir(real_data_dir) -> Path:
    if not (real_data_dir / "ml-1m" / "ratings.dat").is_file():
        pytest.skip(f"the complete MovieLens-1M (ratings.dat) is not in {real_data_dir / 'ml-1m'}")
    return real_data_dir


def read_double_colon(path: Path, names: list[str]) -> pd.DataFrame:
    """A `::`-separated GroupLens file with pandas' C parser: split on `:`, keep every other column (the empty
    ones between the colons). No field of ratings.dat or users.dat holds a colon; the width check proves it."""
    frame = pd.read_csv(path, sep=":", header=None, dtype=str)
    assert frame.shape[1] == 2 * len(names) - 1 and frame.iloc[:, 1::2].isna().all().all()
    kept = frame.iloc[:, ::2].set_axis(names, axis=1)
    return kept.astype({name: int for name in names if name not in ("gender", "zip")})


@pytest.fixture(scope="module")
def raw(ml1m_dir) -> pd.DataFrame:
    ratings = read_double_colon(ml1m_dir / "ml-1m" / "ratings.dat", ["user", "item", "rating", "t"])
    users = read_double_colon(ml1m_dir / "ml-1m" / "users.dat", ["user", "gender", "age", "occupation", "zip"])
    return ratings.merge(users, on="user", how="left", validate="many_to_one")


def test_the_real_files_give_the_papers_figures(ml1m_dir, raw):
    table = load_interactions(DatasetConfig("movielens-1m", "gender"), ml1m_dir)
    stats = domain_statistics(table)[-1]
    assert len(table.frame) == len(raw) == 1_000_209
    assert (stats.users, stats.items) == (6040, 3706)
    assert round(1 - len(raw) / (6040 * 3706), 4) == 0.9553  # the paper's sparsity
    assert int(table.frame["label"].sum()) == int((raw.rating == 5).sum())  # click = rating 5
    assert round(float(table.frame["label"].mean()), 4) == 0.2263  # the paper's positive rate


@pytest.mark.parametrize("split_by, n_domains", [("gender", 2), ("age", 7), ("occupation", 21)])
def test_each_split_gives_every_rating_its_users_domain_and_splits_60_20_20_per_domain(ml1m_dir, raw, split_by,
                                                                                       n_domains):
    dataset = prepare_dataset(DatasetConfig("movielens-1m", split_by), ml1m_dir)
    assert dataset.spec.n_domains == n_domains
    parts = {name: dataset.part(name) for name in ("train", "valid", "test")}
    domains = np.concatenate([part.domains.numpy() for part in parts.values()])
    values = {"gender": sorted(raw.gender.unique()), "age": AGE_ORDER, "occupation": list(range(21))}[split_by]
    expected = [int((raw[split_by] == value).sum()) for value in values]
    assert np.bincount(domains, minlength=n_domains).tolist() == expected
    for domain, rows in enumerate(expected):
        sizes = [int((part.domains == domain).sum()) for part in parts.values()]
        # each (domain, label) stratum is rounded on its own, so a domain is off by at most a row per part and label
        assert all(abs(size - rows * share) <= 2 for size, share in zip(sizes, (0.6, 0.2, 0.2)))
        positives = [float(part.labels[part.domains == domain].mean()) for part in parts.values()]
        assert max(positives) - min(positives) < 2 / (0.2 * rows) + 1e-9  # label-stratified
    labels = np.concatenate([part.labels.numpy() for part in parts.values()])
    assert int(labels.sum()) == int((raw.rating == 5).sum())


def test_the_scenario_wise_table_has_their_three_age_domains_and_an_80_10_10_split(ml1m_dir, raw):
    import importlib.util

    path = Path(__file__).parents[2] / "examples" / "scenario_wise_ml1m.py"
    spec = importlib.util.spec_from_file_location("scenario_wise_ml1m", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.scenario_wise_table(ml1m_dir / "ml-1m", seed=7)
    assert table.age_group.value_counts().to_dict() == {"age-25": 395_556, "age-35+": 393_906, "age-1-18": 210_747}
    assert int(table.click.sum()) == int((raw.rating > 3).sum())
    parts = table.part.value_counts().to_dict()
    assert parts == {"train": 800_167, "valid": 100_020, "test": 100_022}  # int(0.8 n), int(0.1 n), the rest
    order = np.random.default_rng(7).permutation(len(table))  # the split is the seed's permutation, cut 80/10/10
    assert (table.part.to_numpy()[order[:800_167]] == "train").all() and (table.part.to_numpy()[order[-100_022:]] == "test").all()
