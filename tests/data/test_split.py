import numpy as np

from moe_mlora.data import DatasetConfig, prepare_dataset
from moe_mlora.data.split import TEST, TRAIN, VALID, stratified_domain_split


def synthetic_rows(n=20_000, n_domains=5, seed=0):
    rng = np.random.default_rng(seed)
    domains = rng.integers(0, n_domains, n)
    labels = (rng.random(n) < 0.1 + 0.1 * domains).astype(np.int8)
    return domains, labels


def test_every_domain_splits_60_20_20():
    domains, labels = synthetic_rows()
    split = stratified_domain_split(domains, labels, seed=123)
    for domain in range(5):
        part = split[domains == domain]
        n = len(part)
        for which, share in ((TRAIN, 0.6), (VALID, 0.2), (TEST, 0.2)):
            assert abs((part == which).sum() - share * n) <= 2


def test_split_is_stratified_by_label_within_domain():
    domains, labels = synthetic_rows()
    split = stratified_domain_split(domains, labels, seed=123)
    for domain in range(5):
        in_domain = domains == domain
        rate = labels[in_domain].mean()
        for which in (TRAIN, VALID, TEST):
            assert abs(labels[in_domain & (split == which)].mean() - rate) < 0.005


def test_same_seed_same_rows_other_seed_other_rows():
    domains, labels = synthetic_rows()
    first = stratified_domain_split(domains, labels, seed=123)
    assert np.array_equal(first, stratified_domain_split(domains, labels, seed=123))
    assert not np.array_equal(first, stratified_domain_split(domains, labels, seed=124))


def test_tiny_strata_are_still_assigned():
    # Strata of one row go to train (round(0.6) = 1); of two, one to train and one to validation
    # (round(1.2) = 1, round(1.6) = 2); of five, exactly 3 / 1 / 1.
    split = stratified_domain_split(np.array([0, 1, 1]), np.array([1, 0, 1]), seed=1)
    assert split.tolist() == [TRAIN, TRAIN, TRAIN]
    pair = stratified_domain_split(np.array([0, 0]), np.array([1, 1]), seed=1)
    assert sorted(pair.tolist()) == [TRAIN, VALID]
    five = stratified_domain_split(np.zeros(5, dtype=int), np.zeros(5, dtype=int), seed=1)
    assert sorted(five.tolist()) == [TRAIN, TRAIN, TRAIN, VALID, TEST]


def test_prepared_movielens_parts_are_disjoint_and_cover_all_rows(real_data_dir):
    dataset = prepare_dataset(DatasetConfig("movielens-100k", "occupation"), real_data_dir)
    sizes = [len(dataset.part(name)) for name in ("train", "valid", "test")]
    assert sum(sizes) == 100_000
    # Rows are (user, item) pairs, unique in MovieLens: no pair may sit in two parts.
    keys = dataset.codes[:, 0] * 10_000 + dataset.codes[:, 1]
    per_part = [set(keys[dataset.split == p].tolist()) for p in (TRAIN, VALID, TEST)]
    assert not (per_part[0] & per_part[1]) and not (per_part[0] & per_part[2]) and not (per_part[1] & per_part[2])
    for domain in range(21):
        counts = np.bincount(dataset.split[dataset.domains == domain], minlength=3)
        assert abs(counts[0] / counts.sum() - 0.6) < 0.01


def test_prepared_dataset_is_cached_and_identical(real_data_dir, tmp_path):
    config = DatasetConfig("movielens-100k", "age")
    first = prepare_dataset(config, real_data_dir, tmp_path)
    assert len(list(tmp_path.glob("movielens-100k-*.npz"))) == 1
    second = prepare_dataset(config, real_data_dir, tmp_path)
    assert np.array_equal(first.codes, second.codes) and np.array_equal(first.split, second.split)
    assert first.spec == second.spec


def test_split_seed_is_part_of_the_cache_key():
    assert DatasetConfig("movielens-100k", split_seed=7).cache_key() != DatasetConfig("movielens-100k").cache_key()
