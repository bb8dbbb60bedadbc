"""MovieLens-100K and -1M: official file formats, click = (rating == 5), domains by gender, age or occupation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from moe_mlora.data.download import Archive, ensure_archive, verify_file
from moe_mlora.data.readers import read_delimited, read_lines_split
from moe_mlora.data.table import DOMAIN, LABEL, InteractionTable
from moe_mlora.errors import ConfigError, DataError

ML_100K = Archive(
    url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    md5="0e33842e24a9c977be4e0107933c0723",
    folder="ml-100k",
    required_files=("u.data", "u.user", "u.item"),
    file_checksums={
        "u.data": ("sha256", "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
        "u.user": ("sha256", "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c"),
        "u.item": ("sha256", "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701"),
    },
)
ML_1M = Archive(
    url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
    md5="c4d9eecfca2ab87c1945afe126590906",
    folder="ml-1m",
    required_files=("ratings.dat", "users.dat", "movies.dat"),
    file_checksums={
        "ratings.dat": ("git-blob", "77a7c4b150f588c23bb9e1f068aa996c0b413695"),
        "users.dat": ("sha256", "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3"),
        "movies.dat": ("sha256", "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9"),
    },
)

SPLIT_FIELDS = ("gender", "age", "occupation")
FEATURE_FIELDS = ("user_id", "item_id", "gender", "age", "occupation", "zip", "genre")
AGE_GROUPS = ["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]
_ML1M_AGE_CODES = {1: 0, 18: 1, 25: 2, 35: 3, 45: 4, 50: 5, 56: 6}
_AGE_BIN_EDGES = [18, 25, 35, 45, 50, 56]  # lower bounds of groups 1..6
ML1M_OCCUPATIONS = [
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
]
ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]


def age_group_of(ages: np.ndarray) -> np.ndarray:
    """Bucket raw ages (ML-100K) into ML-1M's seven groups, ids 0..6."""
    return np.searchsorted(np.asarray(_AGE_BIN_EDGES), ages, side="right")


def load_movielens_100k(
    data_dir: Path, split_by: str, features: tuple[str, ...], *, verify: bool = True, download: bool = True
) -> InteractionTable:
    folder = ensure_archive(ML_100K, data_dir, download=download)
    if verify:
        _verify(folder, ML_100K)
    ratings = read_delimited(
        folder / "u.data", separator="\t", columns=["user_id", "item_id", "rating", "timestamp"],
        integer_columns=("user_id", "item_id", "rating", "timestamp"), ends_with_newline=True,
    )
    users = read_delimited(
        folder / "u.user", separator="|", columns=["user_id", "age", "gender", "occupation", "zip"],
        integer_columns=("user_id", "age"), encoding="latin-1", ends_with_newline=True,
    )
    users["age"] = np.asarray(AGE_GROUPS)[age_group_of(users["age"].to_numpy())]
    item_rows = read_lines_split(folder / "u.item", separator="|", n_fields=24, encoding="latin-1")
    flags = np.array([row[5:] for row in item_rows], dtype=np.int8)
    items = pd.DataFrame({
        "item_id": np.array([int(row[0]) for row in item_rows], dtype=np.int64),
        "genre": np.asarray(ML100K_GENRES)[flags.argmax(axis=1)],  # first listed genre
    })
    occupation_order = sorted(users["occupation"].unique())
    return _assemble("movielens-100k", folder, ratings, users, items, split_by, features, occupation_order)


def load_movielens_1m(
    data_dir: Path, split_by: str, features: tuple[str, ...], *, verify: bool = True, download: bool = True
) -> InteractionTable:
    folder = ensure_archive(ML_1M, data_dir, download=download)
    if verify:
        _verify(folder, ML_1M)
    ratings = read_delimited(
        folder / "ratings.dat", separator="::", columns=["user_id", "item_id", "rating", "timestamp"],
        integer_columns=("user_id", "item_id", "rating", "timestamp"), ends_with_newline=True,
    )
    users = read_delimited(
        folder / "users.dat", separator="::", columns=["user_id", "gender", "age", "occupation", "zip"],
        integer_columns=("user_id", "age", "occupation"), encoding="latin-1", ends_with_newline=True,
    )
    bad_age = ~users["age"].isin(list(_ML1M_AGE_CODES))
    if bad_age.any():
        row = int(np.argmax(bad_age.to_numpy()))
        raise DataError(f"{folder / 'users.dat'}, line {row + 1}, column 'age': unknown age code {users['age'].iloc[row]}")
    bad_occupation = ~users["occupation"].between(0, len(ML1M_OCCUPATIONS) - 1)
    if bad_occupation.any():
        row = int(np.argmax(bad_occupation.to_numpy()))
        raise DataError(f"{folder / 'users.dat'}, line {row + 1}, column 'occupation': unknown code {users['occupation'].iloc[row]}")
    users["age"] = np.asarray(AGE_GROUPS)[users["age"].map(_ML1M_AGE_CODES).to_numpy()]
    users["occupation"] = np.asarray(ML1M_OCCUPATIONS)[users["occupation"].to_numpy()]
    movie_rows = read_lines_split(folder / "movies.dat", separator="::", n_fields=3, encoding="latin-1")
    items = pd.DataFrame({
        "item_id": np.array([int(row[0]) for row in movie_rows], dtype=np.int64),
        "genre": [row[2].split("|")[0] for row in movie_rows],
    })
    return _assemble("movielens-1m", folder, ratings, users, items, split_by, features, ML1M_OCCUPATIONS)


def _verify(folder: Path, archive: Archive) -> None:
    for name, (algorithm, expected) in archive.file_checksums.items():
        verify_file(folder / name, algorithm, expected)


def _assemble(
    name: str,
    folder: Path,
    ratings: pd.DataFrame,
    users: pd.DataFrame,
    items: pd.DataFrame,
    split_by: str,
    features: tuple[str, ...],
    occupation_order: list[str],
) -> InteractionTable:
    if split_by not in SPLIT_FIELDS:
        raise ConfigError(f"{name}: cannot split by '{split_by}'; choose one of {', '.join(SPLIT_FIELDS)}")
    unknown = [f for f in features if f not in FEATURE_FIELDS]
    if unknown:
        raise ConfigError(f"{name}: unknown feature(s) {unknown}; available: {', '.join(FEATURE_FIELDS)}")
    _check_ratings(ratings, folder)
    _check_ids(ratings, users, "user_id", folder, "users")
    _check_ids(ratings, items, "item_id", folder, "items")
    frame = ratings.merge(users, on="user_id", how="left", validate="many_to_one")
    frame = frame.merge(items, on="item_id", how="left", validate="many_to_one")
    frame[LABEL] = (frame["rating"].to_numpy() == 5).astype(np.int8)
    frame[DOMAIN] = frame[split_by].astype(str)
    order = {"gender": sorted(frame["gender"].unique()), "age": AGE_GROUPS, "occupation": occupation_order}[split_by]
    order = [d for d in order if d in set(frame[DOMAIN].unique())]
    for column in ("user_id", "item_id"):
        frame[column] = frame[column].astype(str)
    return InteractionTable(
        name=name, frame=frame[[*features, LABEL, DOMAIN]].reset_index(drop=True),
        feature_columns=list(features), domain_field=split_by, domain_order=order,
    )


def _check_ratings(ratings: pd.DataFrame, folder: Path) -> None:
    """What the format promises, checked even where checksums are not (a truncated or edited file): at least
    one rating, whole-star ratings 1..5, and each user rates a movie at most once."""
    if ratings.empty:
        raise DataError(f"{folder}: the ratings file has no rows (empty or truncated)")
    bad = ~ratings["rating"].between(1, 5)
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(f"{folder}: ratings line {row + 1}: rating {ratings['rating'].iloc[row]} is outside 1..5")
    repeated = ratings.duplicated(["user_id", "item_id"])
    if repeated.any():
        row = int(np.argmax(repeated.to_numpy()))
        raise DataError(f"{folder}: ratings line {row + 1}: user {ratings['user_id'].iloc[row]} rates movie "
                        f"{ratings['item_id'].iloc[row]} a second time")


def _check_ids(ratings: pd.DataFrame, side: pd.DataFrame, column: str, folder: Path, what: str) -> None:
    if side[column].duplicated().any():
        duplicate = side[column][side[column].duplicated()].iloc[0]
        raise DataError(f"{folder}: {what} file lists {column} {duplicate} twice")
    unknown = ~ratings[column].isin(side[column])
    if unknown.any():
        row = int(np.argmax(unknown.to_numpy()))
        raise DataError(
            f"{folder}: ratings line {row + 1}: {column} {ratings[column].iloc[row]} is not in the {what} file"
        )
