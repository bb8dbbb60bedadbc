"""Write ML-100K joined with its user and item files as one user table (CSV), for `--dataset table`:

    user_id, item_id, age (numeric), occupation, gender, genres ("Action|Comedy"), timestamp, click (rating 5)

    MOE_MLORA_DATA_DIR=../shared/data python examples/movielens_table.py ml100k-joined.csv
    moe-mlora train --config examples/movielens-table.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from moe_mlora.paths import resolve_data_dir

GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def joined_table(folder: Path) -> pd.DataFrame:
    ratings = pd.read_csv(folder / "u.data", sep="\t", names=["user_id", "item_id", "rating", "timestamp"])
    users = pd.read_csv(folder / "u.user", sep="|", names=["user_id", "age", "gender", "occupation", "zip"])
    items = pd.read_csv(folder / "u.item", sep="|", encoding="latin-1", header=None,
                        names=["item_id", "title", "release", "video", "url", *GENRES])
    items["genres"] = items[GENRES].apply(lambda row: "|".join(g for g in GENRES if row[g] == 1), axis=1)
    table = ratings.merge(users, on="user_id").merge(items[["item_id", "genres"]], on="item_id")
    table["click"] = (table.rating == 5).astype(int)
    return table[["user_id", "item_id", "age", "gender", "occupation", "genres", "timestamp", "click"]]


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "ml100k-joined.csv")
    joined_table(resolve_data_dir(None) / "ml-100k").to_csv(out, index=False)
    print(f"wrote {out}")
