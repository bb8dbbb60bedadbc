"""A controlled multi-domain click generator with a known truth: how much domain signal there is is a knob.

Users and items have latent factors. Every domain scores a (user, item) pair by a rotation between the
preference all domains share and one of its own:

    s_d(u, i) = cos(θ) <p_u, q_i> + sin(θ) <p_u^d, q_i^d>,   θ = heterogeneity · π/2,

with all factors N(0, 1/√f), so both terms have unit variance and s_d does too. Heterogeneity 0 makes
the domains identical, 1 unrelated. A click is Bernoulli(sigmoid(signal · s_d + b_d)), with the domain's
bias b_d set so that its positive rate is `positive_rate`.

The other knobs: the number of domains, how many rows in all (density: rows / (users x items)), how the
rows spread over the domains (a Zipf exponent: 0 equal sizes, larger more skewed), and how many of a
domain's users and items it shares with every other domain (`user_overlap`, `item_overlap`: 1 all, 0
none; the rest are its own).

The truth is written beside the table, and with it the **oracle gap**: on the test rows of the paper's
split (per domain, label-stratified 60/20/20, seed 123, exactly what training on the table uses), the WAUC
of the true per-domain model minus that of the best model that cannot see the domain. That one knows every
factor and bias and scores a (user, item) pair by its click probability averaged over the domains the pair
could have come from, each weighted by how likely the generator was to draw the pair there:

    P(click | u, i) = sum_d w_d(u, i) sigmoid(l_d(u, i)) / sum_d w_d(u, i),   w_d = 1[u, i in d] rows_d / pairs_d.

It is what a perfect multi-domain method could gain over a perfect single model: 0 at heterogeneity 0.
(The domains' average transform, cos(θ) <p, q> + sin(θ) mean_d <p^d, q^d>, is not that bound: a domain-blind
model that learns the mixture beats it, by about 2 WAUC points at heterogeneity 1.)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from moe_mlora.auc import auc_or_none
from moe_mlora.data.split import PART_NAMES, stratified_domain_split
from moe_mlora.errors import ConfigError
from moe_mlora.files import write_text_atomic
from moe_mlora.settings import setting

TABLE_FILE, TRUTH_FILE, FACTORS_FILE = "table.parquet", "truth.json", "factors.npz"


@dataclass(frozen=True)
class ControlledConfig:
    """The generator's knobs (each one a `data generate` option). The default table, 4 domains of 200 users x
    150 items with 25k rows each (125 rows a user and 167 an item per domain), is one that Base can learn:
    1,000 x 400 left DeepFM 30 points below the truth (docs/results/controlled/early-stopping.md)."""

    n_domains: int = setting(4, help="Number of domains.")
    users_per_domain: int = setting(200, help="Users a domain draws from.")
    items_per_domain: int = setting(150, help="Items a domain draws from.")
    rows: int = setting(100_000, help="Rows in all (density = rows / (users x items)).")
    heterogeneity: float = setting(0.5, help="0: identical domains ... 1: unrelated.")
    user_overlap: float = setting(1.0, help="Share of a domain's users common to all domains.")
    item_overlap: float = setting(1.0, help="Share of a domain's items common to all domains.")
    imbalance: float = setting(0.0, help="Zipf exponent of the domains' sizes (0: equal).")
    positive_rate: float = setting(0.25, help="Each domain's positive rate.")
    factors: int = setting(4, help="Latent factors of the shared and of each domain's own preference.")
    signal: float = setting(3.0, help="The true logit's scale: how far the truth is from a coin.")
    seed: int = setting(0, help="Seed of the truth and the clicks.")

    def __post_init__(self) -> None:
        checks = [
            (self.n_domains >= 1, "n_domains must be at least 1"),
            (self.users_per_domain >= 2 and self.items_per_domain >= 2, "a domain needs at least 2 users and 2 items"),
            (self.rows >= 10 * self.n_domains, "rows must be at least 10 per domain"),
            (0 <= self.heterogeneity <= 1, "heterogeneity must lie in [0, 1]"),
            (0 <= self.user_overlap <= 1 and 0 <= self.item_overlap <= 1, "overlaps must lie in [0, 1]"),
            (self.imbalance >= 0, "imbalance (a Zipf exponent) must be 0 or more"),
            (0 < self.positive_rate < 1, "positive_rate must lie in (0, 1)"),
            (self.factors >= 1 and self.signal > 0, "factors must be at least 1 and signal positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"controlled data: {message}")

    @property
    def domain_rows(self) -> np.ndarray:
        weights = 1.0 / np.arange(1, self.n_domains + 1) ** self.imbalance
        rows = np.floor(self.rows * weights / weights.sum()).astype(int)
        rows[0] += self.rows - rows.sum()
        return rows


@dataclass
class Truth:
    """The factors and biases a table was drawn from; `logits` scores rows with or without domain knowledge."""

    config: ControlledConfig
    user_shared: np.ndarray  # (users, f)
    item_shared: np.ndarray  # (items, f)
    user_own: np.ndarray  # (domains, users, f)
    item_own: np.ndarray  # (domains, items, f)
    bias: np.ndarray  # (domains,)

    def scores(self, users: np.ndarray, items: np.ndarray, domains: np.ndarray) -> np.ndarray:
        """The domain's own s_d(u, i)."""
        theta = self.config.heterogeneity * math.pi / 2
        shared = np.einsum("nf,nf->n", self.user_shared[users], self.item_shared[items])
        own = np.einsum("nf,nf->n", self.user_own[domains, users], self.item_own[domains, items])
        return math.cos(theta) * shared + math.sin(theta) * own

    def logits(self, users, items, domains, domain_aware: bool = True) -> np.ndarray:
        """The true logit of each row's own domain; or, not domain-aware, the logit of the click probability the
        best domain-blind model assigns: each domain's probability weighted by how likely the pair is drawn there."""
        if domain_aware:
            return self.config.signal * self.scores(users, items, domains) + self.bias[domains]
        n_domains = self.config.n_domains
        every = [self.config.signal * self.scores(users, items, np.full(len(users), d)) + self.bias[d] for d in range(n_domains)]
        probabilities = 1 / (1 + np.exp(-np.stack(every, axis=1)))
        weights = self.pair_weights(users, items)
        mixture = (weights * probabilities).sum(axis=1) / weights.sum(axis=1)
        mixture = np.clip(mixture, 1e-12, 1 - 1e-12)
        return np.log(mixture) - np.log1p(-mixture)

    def pair_weights(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(rows, domains): the chance the generator draws each (user, item) pair in each domain."""
        config = self.config
        _, user_pools = _eligible(config.n_domains, config.users_per_domain, config.user_overlap)
        _, item_pools = _eligible(config.n_domains, config.items_per_domain, config.item_overlap)
        weights = np.zeros((len(users), config.n_domains))
        for d, rows in enumerate(config.domain_rows):
            eligible = np.isin(users, user_pools[d]) & np.isin(items, item_pools[d])
            weights[:, d] = eligible * rows / (len(user_pools[d]) * len(item_pools[d]))
        return weights


def _eligible(n_domains: int, per_domain: int, overlap: float) -> tuple[int, list[np.ndarray]]:
    """Ids 0..n-1 and, per domain, the ids it draws from: a pool common to all, then its own block."""
    common = int(round(overlap * per_domain))
    own = per_domain - common
    pools = [np.concatenate([np.arange(common), common + d * own + np.arange(own)]) for d in range(n_domains)]
    return common + n_domains * own, pools


def _bias_for_rate(logits: np.ndarray, rate: float) -> float:
    """The constant b with mean(sigmoid(logits + b)) = rate (bisection; the mean is monotone in b)."""
    low, high = -50.0, 50.0
    for _ in range(80):
        middle = (low + high) / 2
        if np.mean(1 / (1 + np.exp(-(logits + middle)))) < rate:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def generate(config: ControlledConfig) -> tuple[pd.DataFrame, Truth]:
    """The table (user, item, domain, label) and the truth it was drawn from; the same config, the same rows."""
    rng = np.random.default_rng(config.seed)
    n_users, user_pools = _eligible(config.n_domains, config.users_per_domain, config.user_overlap)
    n_items, item_pools = _eligible(config.n_domains, config.items_per_domain, config.item_overlap)
    scale = config.factors ** -0.25  # so that <p, q> has unit variance
    draw = lambda *shape: rng.normal(0, scale, (*shape, config.factors))  # noqa: E731
    truth = Truth(config, draw(n_users), draw(n_items), draw(config.n_domains, n_users), draw(config.n_domains, n_items),
                  np.zeros(config.n_domains))
    users, items, domains = [], [], []
    for domain, rows in enumerate(config.domain_rows):
        capacity = len(user_pools[domain]) * len(item_pools[domain])
        if rows > capacity:
            raise ConfigError(f"controlled data: domain {domain} needs {rows} distinct (user, item) pairs but has "
                              f"{capacity}; lower rows or raise users_per_domain / items_per_domain")
        pairs = rng.choice(capacity, size=rows, replace=False)  # distinct pairs: one row per user and item
        users.append(user_pools[domain][pairs // len(item_pools[domain])])
        items.append(item_pools[domain][pairs % len(item_pools[domain])])
        domains.append(np.full(rows, domain))
    users, items, domains = np.concatenate(users), np.concatenate(items), np.concatenate(domains)
    base = config.signal * truth.scores(users, items, domains)
    truth.bias = np.array([_bias_for_rate(base[domains == d], config.positive_rate) for d in range(config.n_domains)])
    labels = draw_labels(truth, users, items, domains, rng)
    order = rng.permutation(len(labels))  # domains interleaved, as a real log
    frame = pd.DataFrame({"user": [f"u{u}" for u in users[order]], "item": [f"i{i}" for i in items[order]],
                          "domain": [f"d{d}" for d in domains[order]], "label": labels[order]})
    frame.attrs["ids"] = (users[order], items[order], domains[order])
    return frame, truth


def draw_labels(truth: Truth, users, items, domains, rng: np.random.Generator) -> np.ndarray:
    probabilities = 1 / (1 + np.exp(-truth.logits(users, items, domains)))
    return (rng.random(len(probabilities)) < probabilities).astype(np.int8)


def oracle_wauc(truth: Truth, users, items, domains, labels, parts: np.ndarray, domain_aware: bool,
                part: str = "test") -> float:
    """The WAUC of the true per-domain (or shared) model on one part of the paper's split."""
    mask = parts == PART_NAMES[part]
    scores = truth.logits(users[mask], items[mask], domains[mask], domain_aware)
    return weighted_auc(labels[mask], scores, domains[mask])


def weighted_auc(labels: np.ndarray, scores: np.ndarray, domains: np.ndarray) -> float:
    """The paper's WAUC: per-domain AUC weighted by the domain's rows (domains with one class left out)."""
    total, weighted = 0, 0.0
    for domain in np.unique(domains):
        mask = domains == domain
        auc = auc_or_none(labels[mask], scores[mask])
        if auc is not None:
            weighted += mask.sum() * auc
            total += mask.sum()
    return weighted / total if total else float("nan")


def oracle_gap(truth: Truth, users, items, domains, labels, split_seed: int = 123) -> dict:
    """Per-domain oracle minus shared oracle, test WAUC, on the split training on the table uses."""
    parts = stratified_domain_split(domains, labels, seed=split_seed)
    aware = oracle_wauc(truth, users, items, domains, labels, parts, True)
    shared = oracle_wauc(truth, users, items, domains, labels, parts, False)
    return {"per_domain_oracle_wauc": aware, "shared_oracle_wauc": shared, "oracle_gap": aware - shared}


def write_controlled(config: ControlledConfig, folder: Path) -> dict:
    """Write table.parquet, truth.json (the knobs, biases, sizes, positive rates and the oracle gap) and
    factors.npz into `folder`; returns the truth summary."""
    frame, truth = generate(config)
    users, items, domains = frame.attrs.pop("ids")
    labels = frame["label"].to_numpy()
    summary = {
        "config": asdict(config), **oracle_gap(truth, users, items, domains, labels),
        "domains": [{"domain": f"d{d}", "rows": int((domains == d).sum()), "positive_rate": float(labels[domains == d].mean()),
                     "bias": float(truth.bias[d])} for d in range(config.n_domains)],
        "users": int(len(np.unique(users))), "items": int(len(np.unique(items))),
        "density": float(len(frame) / (len(np.unique(users)) * len(np.unique(items)))),
        "train_with": "moe-mlora train --dataset table --table-path TABLE --split-by domain --features user,item "
                      "--label-column label",
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / TABLE_FILE, index=False)
    np.savez_compressed(folder / FACTORS_FILE, user_shared=truth.user_shared, item_shared=truth.item_shared,
                        user_own=truth.user_own, item_own=truth.item_own, bias=truth.bias)
    write_text_atomic(folder / TRUTH_FILE, json.dumps(summary, indent=2))
    return summary
