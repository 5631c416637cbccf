"""Simulated ratings with the shape of MovieLens: level counts and a long tail of rows per level.

MovieLens-1M has 1,000,209 ratings of 3,706 movies by 6,040 users (every user at least 20
ratings, a median of 96 and a maximum of 2,314; movies from 1 to 3,428 ratings);
MovieLens-10M has 10,000,054 ratings of 10,677 movies by 69,878 users. The generator draws
each user's number of ratings from a shifted lognormal scaled to the target total, each
user's movies without replacement with lognormal popularity (so no pair repeats), and moves a
few ratings of popular movies to the movies no one drew. Every user and movie has a row.

Response: ``y = 3.6 + 0.1 x + b_user + b_movie + e`` with SDs 0.45, 0.5 and 0.9 (gaussian), and
``yb = 1{logistic(-0.2 + 0.1 x + 1.1 b_user + 1.1 b_movie) > U}`` (binary).

    python benchmarks/movielens_shaped.py 1m out.parquet
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

SHAPES = {
    "1m": dict(n=1_000_209, users=6_040, items=3_706, min_per_user=20, sigma=1.05, item_sigma=1.2),
    "10m": dict(n=10_000_054, users=69_878, items=10_677, min_per_user=20, sigma=1.1, item_sigma=1.9),
}


def _user_counts(rng, n, users, items, lo, sigma) -> np.ndarray:
    raw = rng.lognormal(0.0, sigma, users)
    cnt = lo + raw / raw.sum() * (n - lo * users)
    cnt = np.minimum(np.floor(cnt).astype(np.int64), int(0.65 * items))
    short = n - cnt.sum()  # distribute the rounding remainder over users with room left
    while short > 0:
        room = np.flatnonzero(cnt < int(0.65 * items))
        add = rng.choice(room, size=min(short, room.size), replace=False)
        cnt[add] += 1
        short = n - cnt.sum()
    return cnt


def _distinct_items(rng, cnt, pop, chunk_cells=4_000_000) -> np.ndarray:
    """For each user, ``cnt[u]`` distinct items drawn without replacement with probabilities
    proportional to ``pop`` (Efraimidis-Spirakis keys), users in chunks."""
    U, I = cnt.size, pop.size
    out = []
    logw = np.log(pop)
    step = max(1, chunk_cells // I)
    for u0 in range(0, U, step):
        c = cnt[u0 : u0 + step]
        keys = np.log(-np.log(rng.random((c.size, I)))) - logw  # smaller is earlier
        order = np.argsort(keys, axis=1)
        take = np.arange(I)[None, :] < c[:, None]
        out.append(order[take])
    return np.concatenate(out)


def ratings(shape: str = "1m", seed: int = 1) -> pd.DataFrame:
    """A data frame with columns ``user``, ``item`` (categoricals), ``x``, ``y`` and ``yb``."""
    p = SHAPES[shape]
    rng = np.random.default_rng(seed)
    n, U, I = p["n"], p["users"], p["items"]
    cnt = _user_counts(rng, n, U, I, p["min_per_user"], p["sigma"])
    pop = rng.lognormal(0.0, p["item_sigma"], I)
    users = np.repeat(np.arange(U), cnt)
    items = _distinct_items(rng, cnt, pop)
    # every item at least once: give each unused item a row of a popular item, from a user
    # who has not rated the unused one (distinct pairs are kept)
    unused = np.setdiff1d(np.arange(I), items)
    if unused.size:
        key = set((users * I + items).tolist()) if unused.size > 0 else set()
        cand = np.flatnonzero(np.bincount(items, minlength=I)[items] > 100)
        rows = rng.choice(cand, size=unused.size * 4, replace=False)
        k = 0
        for it in unused:  # a few dozen items at most
            while users[rows[k]] * I + it in key:
                k += 1
            key.discard(users[rows[k]] * I + items[rows[k]])
            items[rows[k]] = it
            key.add(users[rows[k]] * I + it)
            k += 1
    bu = 0.45 * rng.normal(size=U)
    bi = 0.5 * rng.normal(size=I)
    x = rng.normal(size=n)
    y = 3.6 + 0.1 * x + bu[users] + bi[items] + 0.9 * rng.normal(size=n)
    eta = -0.2 + 0.1 * x + 1.1 * (bu[users] + bi[items])
    yb = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int8)
    return pd.DataFrame({
        "user": pd.Categorical(users), "item": pd.Categorical(items), "x": x, "y": y, "yb": yb,
    })


if __name__ == "__main__":
    shape = sys.argv[1] if len(sys.argv) > 1 else "1m"
    df = ratings(shape)
    nu = df.groupby("user", observed=True).size()
    ni = df.groupby("item", observed=True).size()
    print(f"{len(df):,} rows, {nu.size:,} users (rows per user min {nu.min()}, median "
          f"{int(nu.median())}, max {nu.max()}), {ni.size:,} items (min {ni.min()}, median "
          f"{int(ni.median())}, max {ni.max()})")
    print("sum n_user^2 =", f"{int((nu.astype(float) ** 2).sum()):.3g}",
          " sum n_item^2 =", f"{int((ni.astype(float) ** 2).sum()):.3g}")
    if len(sys.argv) > 2:
        df.to_parquet(sys.argv[2]) if sys.argv[2].endswith(".parquet") else df.to_csv(sys.argv[2], index=False)
