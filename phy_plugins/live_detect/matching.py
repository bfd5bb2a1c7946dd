"""Match detected events to sorted spikes (+-tolerance in time, on a nearby channel)."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np


def match_nearest(t_a: np.ndarray, ch_a: np.ndarray, t_b: np.ndarray, ch_b: np.ndarray, positions: np.ndarray,
                  tol: int, radius_um: float, used: np.ndarray) -> np.ndarray:
    """One-to-one matching: for each item of a (in order), the index of the unused item of b
    (``t_b`` sorted) within +-``tol`` samples whose channel lies within ``radius_um``, nearest in
    time, then in space (then the earlier one); -1 if none. Items of b with channel -1 never
    match; matched items are marked in ``used`` (updated in place). Channels beyond
    ``positions`` are clipped to its last row."""
    t_a, ch_a = np.asarray(t_a, np.int64), np.asarray(ch_a, np.int64)
    pos = np.asarray(positions, float)[:, :2]
    out = np.full(t_a.size, -1, np.int64)
    lo = np.searchsorted(t_b, t_a - tol, side="left")
    hi = np.searchsorted(t_b, t_a + tol, side="right")
    for i in np.flatnonzero(hi > lo):
        j = np.arange(lo[i], hi[i])
        j = j[~used[j] & (ch_b[j] >= 0)]
        if j.size == 0:
            continue
        d = np.hypot(*(pos[np.minimum(ch_b[j], len(pos) - 1)] - pos[min(ch_a[i], len(pos) - 1)]).T)
        near = d <= radius_um
        if not near.any():
            continue
        j, d = j[near], d[near]
        k = j[np.lexsort((d, np.abs(t_b[j] - t_a[i])))[0]]
        used[k] = True
        out[i] = k
    return out


class ClusterMatcher:
    """One-to-one matching of events to the spikes of a sorting.

    An event at sample ``t`` on channel ``c`` matches the not-yet-matched sorted spike closest
    in time within ``+-tol_ms`` whose cluster's best channel lies within ``radius_um`` of ``c``.
    Thread-safe: the worker calls :meth:`match`, the GUI :meth:`recall` and :meth:`set_clusters`.
    """

    def __init__(self, spike_samples: np.ndarray, spike_clusters: np.ndarray,
                 cluster_channel: Mapping[int, int], channel_positions: np.ndarray | None,
                 sample_rate: float, *, tol_ms: float = 0.5, radius_um: float = 100.0) -> None:
        st = np.asarray(spike_samples, dtype=np.int64).ravel()
        if st.size and np.any(np.diff(st) < 0):
            raise ValueError("spike_samples must be sorted")
        self.spike_samples = st
        self.tol = int(round(tol_ms * 1e-3 * sample_rate))
        self.radius_um = float(radius_um)
        n_ch = 1 + max([int(c) for c in cluster_channel.values()] + [0])
        pos = np.zeros((n_ch, 2)) if channel_positions is None else np.asarray(channel_positions, float)
        self.positions = pos
        self._lock = threading.Lock()
        self._matched = np.zeros(st.size, bool)
        self._range: tuple[int, int] | None = None
        self.set_clusters(spike_clusters, cluster_channel)

    def set_clusters(self, spike_clusters: np.ndarray, cluster_channel: Mapping[int, int]) -> None:
        """New cluster assignment (after a merge/split); previous matches keep their spikes."""
        sc = np.asarray(spike_clusters, dtype=np.int64).ravel()
        if sc.size != self.spike_samples.size:
            raise ValueError("spike_clusters and spike_samples differ in length")
        ids = np.unique(sc)
        chan = np.array([int(cluster_channel.get(int(c), -1)) for c in ids], dtype=np.int64)
        with self._lock:
            self._clusters = sc
            self._spike_channel = chan[np.searchsorted(ids, sc)] if sc.size else sc

    def reset(self) -> None:
        """Forget all matches (a new run)."""
        with self._lock:
            self._matched[:] = False
            self._range = None

    def match(self, peak_index: np.ndarray, channel: np.ndarray) -> np.ndarray:
        """Cluster id per event (-1 when no sorted spike matches); marks the spikes used."""
        with self._lock:
            k = match_nearest(peak_index, channel, self.spike_samples, self._spike_channel, self.positions,
                              self.tol, self.radius_um, self._matched)
            return np.where(k >= 0, self._clusters[k], -1)

    def mark_range(self, start: int, stop: int) -> None:
        """Declare samples [start, stop) fully processed (for :meth:`recall`)."""
        with self._lock:
            if self._range is None:
                self._range = (int(start), int(stop))
            else:
                self._range = (min(self._range[0], int(start)), max(self._range[1], int(stop)))

    def recall(self) -> dict[int, tuple[int, int]]:
        """Per cluster: (sorted spikes found by the detector, sorted spikes in the processed range)."""
        with self._lock:
            if self._range is None:
                return {}
            a, b = np.searchsorted(self.spike_samples, self._range)
            clusters = self._clusters[a:b]
            found = self._matched[a:b]
        ids, inv = np.unique(clusters, return_inverse=True)
        total = np.bincount(inv, minlength=ids.size)
        hit = np.bincount(inv, weights=found, minlength=ids.size).astype(int)
        return {int(c): (int(h), int(n)) for c, h, n in zip(ids, hit, total, strict=True)}
