"""Write Scenario-Wise Rec's MovieLens-1M setting as one user table, for `--dataset table`:

    user_id, movie_id, gender, occupation, zip, first_genre, age (numeric), age_group (the domain),
    click (rating > 3), part (train / valid / test: an unstratified random 80/10/10 split)

Their protocol (scripts/run_movielens_rank_multi_domain.py of Xiaopengli1/Scenario-Wise-Rec): ratings joined
with users and movies; the first listed genre; three domains by age, {1, 18}, {25}, {35, 45, 50, 56}
(210,747 / 395,556 / 393,906 rows); torch's random_split 80/10/10 over all rows. Ours draws the split with
numpy from `--seed` (their split depends on torch's global seed): the same kind of split, not the same rows.

    MOE_MLORA_DATA_DIR=../shared/data python examples/scenario_wise_ml1m.py ml1m-scenario-wise.csv
    moe-mlora train --config examples/scenario-wise-ml1m.yaml --approach star
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from moe_mlora.paths import resolve_data_dir

AGE_GROUPS = {1: "age-1-18", 18: "age-1-18", 25: "age-25", 35: "age-35+", 45: "age-35+", 50: "age-35+", 56: "age-35+"}
SHARES = (0.8, 0.1)  # train, valid; the rest is test


def scenario_wise_table(folder: Path, seed: int = 2022) -> pd.DataFrame:
    read = dict(sep="::", engine="python", encoding="latin-1")
    ratings = pd.read_csv(folder / "ratings.dat", names=["user_id", "movie_id", "rating", "timestamp"], **read)
    users = pd.read_csv(folder / "users.dat", names=["user_id", "gender", "age", "occupation", "zip"], **read)
    movies = pd.read_csv(folder / "movies.dat", names=["movie_id", "title", "genres"], **read)
    movies["first_genre"] = movies.genres.str.split("|").str[0]
    table = ratings.merge(users, on="user_id").merge(movies[["movie_id", "first_genre"]], on="movie_id")
    table["age_group"] = table.age.map(AGE_GROUPS)
    table["click"] = (table.rating > 3).astype(int)
    order = np.random.default_rng(seed).permutation(len(table))
    cut_train, cut_valid = int(len(table) * SHARES[0]), int(len(table) * SHARES[0]) + int(len(table) * SHARES[1])
    part = np.empty(len(table), dtype=object)
    part[order[:cut_train]], part[order[cut_train:cut_valid]], part[order[cut_valid:]] = "train", "valid", "test"
    table["part"] = part
    return table[["user_id", "movie_id", "gender", "occupation", "zip", "first_genre", "age", "age_group", "click", "part"]]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="ml1m-scenario-wise.csv", type=Path)
    parser.add_argument("--seed", type=int, default=2022, help="the split's seed (Scenario-Wise Rec's default seed)")
    args = parser.parse_args()
    table = scenario_wise_table(resolve_data_dir(None) / "ml-1m", args.seed)
    table.to_csv(args.output, index=False)
    counts = table.age_group.value_counts().sort_index()
    print(f"wrote {args.output}: {len(table):,} rows; " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
