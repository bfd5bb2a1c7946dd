"""Principal-component cluster-isolation metrics (SpikeInterface 0.102 names and definitions).

From a phy folder they use Kilosort's ``pc_features.npy`` (3 PCs on each template's nearest
channels, a whitened basis), so values are on another scale than SpikeInterface's; the ranking
of clusters is what a model can use.
"""

from __future__ import annotations

import math

import numpy as np

PCA_METRICS = ("isolation_distance", "l_ratio", "d_prime", "silhouette", "nn_hit_rate", "nn_miss_rate")


def mahalanobis_metrics(own: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(isolation_distance, l_ratio) of ``own`` points against ``other`` points."""
    from scipy.stats import chi2

    if len(own) < 2 or len(other) < 1:
        return math.nan, math.nan
    mean = own.mean(axis=0)
    vi = np.linalg.pinv(np.cov(own.T))

    def dist2(x):
        d = x - mean
        return np.einsum("ij,jk,ik->i", d, vi, d)

    d_other = np.sort(dist2(other))
    n = min(len(own), len(other))
    if n < 2:
        return math.nan, math.nan
    l_ratio = float(np.sum(1 - chi2.cdf(d_other, own.shape[1])) / len(own))
    return float(d_other[n - 1]), l_ratio


def d_prime(own: np.ndarray, other: np.ndarray) -> float:
    """Separability along Fisher's linear discriminant (Hill et al.)."""
    if len(own) < 2 or len(other) < 2:
        return math.nan
    sw = np.cov(own.T) * (len(own) - 1) + np.cov(other.T) * (len(other) - 1)
    w = np.linalg.pinv(sw) @ (own.mean(axis=0) - other.mean(axis=0))
    a, b = own @ w, other @ w
    den = math.sqrt(0.5 * (np.std(a) ** 2 + np.std(b) ** 2))
    return float(abs(a.mean() - b.mean()) / den) if den > 0 else math.nan


def nearest_neighbor_rates(own: np.ndarray, other: np.ndarray, n_neighbors: int = 5,
                           max_spikes: int = 10000, max_queries: int = 500,
                           seed: int = 0) -> tuple[float, float]:
    """(hit rate, miss rate): share of own points' neighbours that are own, of others' that are own.

    At most ``max_spikes`` points in all; the miss rate is estimated on ``max_queries`` other points.
    """
    from scipy.spatial import cKDTree

    if len(own) <= n_neighbors or len(other) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    ratio = min(1.0, max_spikes / (len(own) + len(other)))
    if ratio < 1:
        own = own[rng.random(len(own)) < ratio]
        other = other[rng.random(len(other)) < ratio]
    if len(own) <= n_neighbors or len(other) == 0:
        return math.nan, math.nan
    x = np.concatenate([own, other])
    is_own = np.r_[np.ones(len(own), bool), np.zeros(len(other), bool)]
    queries = np.r_[np.arange(len(own)), len(own) + rng.permutation(len(other))[:max_queries]]
    _, idx = cKDTree(x).query(x[queries], k=n_neighbors + 1)
    neigh = is_own[idx[:, 1:]]
    q_own = is_own[queries]
    return float(neigh[q_own].mean()), float(neigh[~q_own].mean())


def simplified_silhouette(own: np.ndarray, others: list[np.ndarray]) -> float:
    """Centroid silhouette: (b - a) / max(a, b), a = mean distance to own centroid, b = nearest other."""
    if len(own) == 0 or not others:
        return math.nan
    a = float(np.mean(np.linalg.norm(own - own.mean(axis=0), axis=1)))
    b = min(float(np.mean(np.linalg.norm(own - o.mean(axis=0), axis=1))) for o in others if len(o))
    return (b - a) / max(a, b) if max(a, b) > 0 else math.nan


def pca_metrics(features_by_cluster: dict[int, np.ndarray]) -> dict[int, dict[str, float]]:
    """Metrics per cluster from ``{cluster: (n_spikes, n_features)}`` on that cluster's own channels.

    ``features_by_cluster[c]`` must hold, under key ``c``, a dict ``{other_cluster: points}``
    with every cluster expressed on ``c``'s channels (see :func:`phy_features.pc_points`).
    """
    out = {}
    for cid, groups in features_by_cluster.items():
        own = groups.get(cid, np.empty((0, 0)))
        others = [v for k, v in groups.items() if k != cid and len(v)]
        other = np.concatenate(others) if others else np.empty((0, own.shape[1] if own.ndim == 2 else 0))
        iso, lr = mahalanobis_metrics(own, other)
        hit, miss = nearest_neighbor_rates(own, other)
        out[cid] = {
            "isolation_distance": iso,
            "l_ratio": lr,
            "d_prime": d_prime(own, other),
            "silhouette": simplified_silhouette(own, others),
            "nn_hit_rate": hit,
            "nn_miss_rate": miss,
        }
    return out
