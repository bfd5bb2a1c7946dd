"""Candidate pairs from template similarity (higher threshold = stricter = fewer pairs)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .evidence import SortingData

NOISE_LABELS = frozenset({"noise"})


@dataclass(frozen=True)
class Candidate:
    """A pair of clusters to judge (a < b) and their template similarity."""

    a: int
    b: int
    similarity: float


def cluster_similarity(data: SortingData, cluster_ids: np.ndarray) -> tuple[np.ndarray, str]:
    """(n, n) similarity between clusters and where it came from.

    Like phy's ``template`` similarity: the maximum of ``similar_templates.npy`` over the
    templates used by each cluster. Without that file (or if it is all zero), the cosine
    similarity of the clusters' mean unwhitened templates.
    """
    ids = [int(c) for c in cluster_ids]
    sim_t = data.similar_templates
    if sim_t is not None and np.any(sim_t):
        sim_t = np.asarray(sim_t, dtype=float)
        st = np.asarray(data.spike_templates)
        temps = [np.unique(st[data.spikes(c)]) for c in ids]
        rows = np.array([sim_t[t].max(axis=0) if len(t) else np.zeros(sim_t.shape[1])
                         for t in temps])  # (n_clusters, n_templates)
        out = np.array([rows[:, t].max(axis=1) if len(t) else np.zeros(len(ids))
                        for t in temps]).T
        out = np.maximum(out, out.T)
        return out, "similar_templates.npy (phy's template similarity)"
    flat = []
    for c in ids:
        w = data.cluster_template(c)
        flat.append(np.zeros(1) if w is None else np.asarray(w, dtype=float).ravel())
    size = max(len(f) for f in flat) if flat else 1
    m = np.array([np.pad(f, (0, size - len(f))) for f in flat]) if flat else np.zeros((0, 1))
    norm = np.linalg.norm(m, axis=1, keepdims=True)
    m = m / np.where(norm > 0, norm, 1)
    return m @ m.T, "cosine similarity of mean templates"


def candidate_pairs(
    data: SortingData,
    threshold: float = 0.7,
    k: int = 3,
    skip_labels: frozenset[str] = NOISE_LABELS,
    cluster_ids: np.ndarray | None = None,
) -> tuple[list[Candidate], str]:
    """Pairs with similarity >= ``threshold``, at most ``k`` pairs per cluster.

    Pairs are taken in decreasing similarity and a pair is kept only while both clusters
    have fewer than ``k`` pairs. Clusters whose group label is in ``skip_labels`` are skipped.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be between 0 and 1 (higher = stricter), got {threshold}")
    if k < 1:
        raise ValueError(f"k (pairs per cluster) must be at least 1, got {k}")
    ids = data.cluster_ids if cluster_ids is None else np.asarray(cluster_ids)
    ids = np.array([c for c in ids if str(data.groups.get(int(c), "")).lower() not in skip_labels],
                   dtype=np.int64)
    if len(ids) < 2:
        return [], "no pairs"
    sim, source = cluster_similarity(data, ids)
    iu, ju = np.triu_indices(len(ids), k=1)
    s = sim[iu, ju]
    keep = s >= threshold
    iu, ju, s = iu[keep], ju[keep], s[keep]
    order = np.lexsort((ju, iu, -s))
    count: dict[int, int] = {}
    out = []
    for o in order:
        a, b = int(ids[iu[o]]), int(ids[ju[o]])
        if count.get(a, 0) < k and count.get(b, 0) < k:
            out.append(Candidate(min(a, b), max(a, b), float(s[o])))
            count[a] = count.get(a, 0) + 1
            count[b] = count.get(b, 0) + 1
    return out, source
