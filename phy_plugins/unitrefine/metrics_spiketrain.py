"""Spike-train quality metrics, with SpikeInterface 0.102's names, defaults and definitions.

All functions take one cluster's sorted spike times in samples (int64) and return plain floats.
"""

from __future__ import annotations

import math

import numpy as np

SPIKETRAIN_METRICS = (
    "num_spikes",
    "firing_rate",
    "presence_ratio",
    "isi_violations_ratio",
    "isi_violations_count",
    "rp_contamination",
    "rp_violations",
    "sliding_rp_violation",
    "sync_spike_2",
    "sync_spike_4",
    "sync_spike_8",
    "firing_range",
)


def cluster_spike_indices(spike_clusters: np.ndarray) -> dict[int, np.ndarray]:
    """{cluster id: indices of its spikes, increasing}, clusters in increasing id order."""
    order = np.argsort(spike_clusters, kind="stable")
    ids, starts = np.unique(spike_clusters[order], return_index=True)
    ends = list(starts[1:]) + [len(order)]
    return {int(c): order[a:b] for c, a, b in zip(ids, starts, ends)}


def bin_edges(total_samples: int, bin_samples: int) -> np.ndarray:
    """Edges 0, b, 2b, ... up to the last full bin (+1 so the last edge is inclusive)."""
    end = total_samples // bin_samples * bin_samples + 1
    return np.arange(0, end, bin_samples)


def presence_ratio(st: np.ndarray, total_samples: int, fs: float, bin_s: float = 60.0) -> float:
    """Fraction of ``bin_s`` bins with at least one spike; NaN if the recording is shorter than a bin."""
    bin_samples = int(bin_s * fs)
    if total_samples < bin_samples or len(st) == 0:
        return math.nan
    edges = bin_edges(total_samples, bin_samples)
    if len(edges) < 2:
        return 0.0
    counts, _ = np.histogram(st, bins=edges)
    return float(np.sum(counts > 0) / (len(edges) - 1))


def isi_violations(st: np.ndarray, duration_s: float, fs: float, isi_threshold_ms: float = 1.5,
                   min_isi_ms: float = 0.0) -> tuple[float, int]:
    """(isi_violations_ratio, isi_violations_count) as in UMS / Hill et al."""
    n = len(st)
    if n == 0:
        return math.nan, -1
    thr_s = isi_threshold_ms / 1000
    count = int(np.sum(np.diff(st / fs) < thr_s))
    violation_time = 2 * n * (thr_s - min_isi_ms / 1000)
    ratio = (count / violation_time) / (n / duration_s)
    return float(ratio), count


def rp_violations(st: np.ndarray, total_samples: int, fs: float, refractory_period_ms: float = 1.0,
                  censored_period_ms: float = 0.0) -> tuple[float, int]:
    """(rp_contamination, rp_violations) after Llobet et al. 2022: all spike pairs closer than t_r."""
    n = len(st)
    if n == 0:
        return math.nan, -1
    t_r = int(round(refractory_period_ms * fs * 1e-3))
    t_c = int(round(censored_period_ms * fs * 1e-3))
    st = np.asarray(st, dtype=np.int64)
    # number of later spikes within t_r of each spike: searchsorted counts pairs in O(n log n)
    n_v = int(np.sum(np.searchsorted(st, st + t_r, side="right") - np.arange(1, n + 1)))
    if n <= 1:
        return math.nan, n_v
    denom = 1 - n_v * (total_samples - 2 * n * t_c) / (n**2 * (t_r - t_c))
    return (1.0 if denom < 0 else 1 - math.sqrt(denom)), n_v


def _positive_autocorrelogram(st: np.ndarray, bin_samples: int, n_bins: int) -> np.ndarray:
    """Counts of pairs (i < j) with lag t_j - t_i in [k*bin, (k+1)*bin) for k < n_bins."""
    counts = np.zeros(n_bins, dtype=np.int64)
    max_lag = bin_samples * n_bins
    st = np.asarray(st, dtype=np.int64)
    for shift in range(1, len(st)):
        lags = st[shift:] - st[:-shift]
        ok = lags < max_lag
        if not ok.any():
            break
        counts += np.bincount(lags[ok] // bin_samples, minlength=n_bins)[:n_bins]
    return counts


def sliding_rp_violation(st: np.ndarray, duration_s: float, fs: float, bin_size_ms: float = 0.25,
                         exclude_ref_period_below_ms: float = 0.5, max_ref_period_ms: float = 10.0) -> float:
    """Minimum contamination accepted with 90 % confidence over sliding refractory periods (IBL)."""
    from scipy.stats import poisson

    n = len(st)
    if n == 0:
        return math.nan
    contamination = np.arange(0.5, 35, 0.5) / 100
    bin_samples = int(bin_size_ms * fs / 1000)
    bin_s = bin_samples / fs
    n_rp = int(max_ref_period_ms / 1000 / bin_s)
    acg = _positive_autocorrelogram(st, bin_samples, n_rp)
    rp_edges = np.arange(n_rp + 1) * bin_s
    rp_centers = (rp_edges[:-1] + rp_edges[1:]) / 2
    firing_rate = n / duration_s
    obs = np.cumsum(acg)[np.newaxis, :]
    expected = (firing_rate * contamination[:, np.newaxis]) * rp_edges[1:][np.newaxis, :] * 2 * n
    conf = 1 - poisson.cdf(obs, expected)
    hits = np.where(conf[:, rp_centers > exclude_ref_period_below_ms / 1000] > 0.9)[0]
    return float(contamination[hits[0]]) if len(hits) else math.nan


def firing_range(st: np.ndarray, total_samples: int, fs: float, bin_size_s: float = 5,
                 percentiles: tuple[float, float] = (5, 95)) -> float:
    """Range between the 5th and 95th percentiles of the firing rate in 5 s bins."""
    bin_samples = int(bin_size_s * fs)
    if len(st) == 0 or total_samples < bin_samples:
        return math.nan
    counts, _ = np.histogram(st, bins=bin_edges(total_samples, bin_samples))
    rates = counts / bin_size_s
    return float(np.percentile(rates, percentiles[1]) - np.percentile(rates, percentiles[0]))


def synchrony(spike_times: np.ndarray, spike_clusters: np.ndarray, sizes=(2, 4, 8)) -> dict[int, dict[int, float]]:
    """{size: {cluster: fraction of its spikes in an event of >= size spikes at the same sample}}."""
    order = np.lexsort((spike_clusters, spike_times))
    t = np.asarray(spike_times)[order]
    c = np.asarray(spike_clusters)[order]
    ids, n_per = np.unique(c, return_counts=True)
    out: dict[int, dict[int, float]] = {s: dict.fromkeys(ids.tolist(), 0.0) for s in sizes}
    if len(t) < 2:
        return out
    same = t[1:] == t[:-1]
    mask = np.zeros(len(t), bool)
    mask[:-1] |= same
    mask[1:] |= same
    if not mask.any():
        return out
    ts, cs = t[mask], c[mask]
    starts = np.ones(len(ts), bool)
    starts[1:] = ts[1:] != ts[:-1]
    group = np.cumsum(starts) - 1
    group_size = np.bincount(group)
    pairs = np.unique(np.stack([group, np.searchsorted(ids, cs)], axis=1), axis=0)
    for s in sizes:
        sel = pairs[group_size[pairs[:, 0]] >= s, 1]
        counts = np.bincount(sel, minlength=len(ids))
        out[s] = {int(i): float(counts[k] / n_per[k]) for k, i in enumerate(ids)}
    return out


def spiketrain_metrics(spike_times: np.ndarray, spike_clusters: np.ndarray, total_samples: int,
                       fs: float, cluster_ids=None) -> dict[int, dict[str, float]]:
    """All spike-train metrics for each cluster (exact from spike times, SI 0.102 defaults)."""
    spike_times = np.asarray(spike_times, dtype=np.int64)
    spike_clusters = np.asarray(spike_clusters)
    duration_s = total_samples / fs
    spikes = cluster_spike_indices(spike_clusters)
    sync = synchrony(spike_times, spike_clusters)
    wanted = list(spikes) if cluster_ids is None else [int(c) for c in cluster_ids]
    out = {}
    for cid in wanted:
        st = np.sort(spike_times[spikes[cid]]) if cid in spikes else np.empty(0, np.int64)
        n = len(st)
        isi_ratio, isi_count = isi_violations(st, duration_s, fs)
        rp_cont, rp_v = rp_violations(st, total_samples, fs)
        out[cid] = {
            "num_spikes": float(n),
            "firing_rate": n / duration_s if duration_s > 0 else math.nan,
            "presence_ratio": presence_ratio(st, total_samples, fs),
            "isi_violations_ratio": isi_ratio,
            "isi_violations_count": float(isi_count),
            "rp_contamination": rp_cont,
            "rp_violations": float(rp_v),
            "sliding_rp_violation": sliding_rp_violation(st, duration_s, fs),
            "sync_spike_2": sync[2].get(cid, math.nan) if n else -1.0,
            "sync_spike_4": sync[4].get(cid, math.nan) if n else -1.0,
            "sync_spike_8": sync[8].get(cid, math.nan) if n else -1.0,
            "firing_range": firing_range(st, total_samples, fs),
        }
    return out
