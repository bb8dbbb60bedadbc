"""A seeded, clearly SYNTHETIC stand-in for the Taobao theme logs, written in the real file format.

The real logs need a Tianchi login, so experiments here run on this generator. It writes
`theme_click_log.csv` and `theme_item_pool.csv` exactly as Tianchi ships them, and the real loader reads
them back, so the whole Taobao path is exercised. Clicks follow latent user/item factors seen through a
per-theme transform, so themes differ in what users like (the multi-domain signal), and positives are
very sparse (density ~1e-3 like the paper's Taobao splits).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from moe_mlora.data.taobao import CLICK_COLUMNS, CLICK_LOG, ITEM_POOL


@dataclass(frozen=True)
class SyntheticTaobaoConfig:
    n_themes: int = 20
    n_users: int = 12_000
    n_items: int = 20_000
    pool_size: int = 1_500
    themes_per_user: float = 1.5  # mean number of themes a user clicks in
    clicks_per_user_theme: float = 3.0  # mean clicks of an active user in a theme
    latent_dim: int = 8
    theme_shift: float = 0.8  # how far each theme's taste departs from the shared one
    seed: int = 2024


def generate_synthetic_taobao(folder: Path, config: SyntheticTaobaoConfig = SyntheticTaobaoConfig()) -> Path:
    """Write the SYNTHETIC click log and item pool into `folder` (idempotent for a given config)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    users = rng.normal(size=(config.n_users, config.latent_dim))
    items = rng.normal(size=(config.n_items, config.latent_dim))
    shared = np.eye(config.latent_dim)
    rows = []
    pools = []
    for theme in range(config.n_themes):
        theme_id = 1000 + theme
        transform = shared + config.theme_shift * rng.normal(size=shared.shape) / np.sqrt(config.latent_dim)
        pool = rng.choice(config.n_items, size=config.pool_size, replace=False)
        pools.append(pd.DataFrame({"theme_id": theme_id, "item_id": pool}))
        active = np.flatnonzero(rng.random(config.n_users) < config.themes_per_user / config.n_themes)
        scores = (users[active] @ transform) @ items[pool].T
        n_clicks = np.clip(rng.poisson(config.clicks_per_user_theme - 1, size=len(active)) + 1, 1, 20)
        gumbel = rng.gumbel(size=scores.shape)
        ranked = np.argsort(-(scores + gumbel), axis=1)[:, :20]
        take = np.arange(20)[None, :] < n_clicks[:, None]
        user_index = np.broadcast_to(active[:, None], ranked.shape)[take]
        item_index = pool[ranked[take]]
        rows.append(pd.DataFrame({
            "user_id": user_index, "theme_id": theme_id, "item_id": item_index,
            "leaf_cate_id": item_index % 97, "cate_level1_id": item_index % 13, "clk_cnt": 1,
            "reach_time": 0,
        }))
    clicks = pd.concat(rows, ignore_index=True)
    # Interleave themes in time, as a real log is, while keeping theme ids' first appearance in order.
    clicks["reach_time"] = pd.Timestamp("2018-06-01") + pd.to_timedelta(
        np.sort(rng.integers(0, 6 * 86400, size=len(clicks))), unit="s")
    clicks = clicks.sort_values(["reach_time"], kind="stable")
    first_rows = clicks.drop_duplicates("theme_id").index
    clicks = pd.concat([clicks.loc[sorted(first_rows)], clicks.drop(first_rows)])
    clicks["reach_time"] = clicks["reach_time"].dt.strftime("%Y%m%d%H%M%S")
    clicks[CLICK_COLUMNS].to_csv(folder / CLICK_LOG, index=False)
    pd.concat(pools, ignore_index=True).to_csv(folder / ITEM_POOL, index=False)
    return folder
