"""Sorting data and per-pair evidence (correlograms, amplitudes, waveforms, content hash)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from phylib.stats.ccg import correlograms

# Bump when what goes into a pair's evidence or image changes (invalidates the cache).
EVIDENCE_VERSION = "ev1"


@dataclass
class EvidenceParams:
    """Correlogram and refractory settings (seconds)."""

    bin_size: float = 0.0005
    window_size: float = 0.050
    refractory: float = 0.0015
    shoulder: tuple[float, float] = (0.005, 0.025)
    max_amplitude_points: int = 4000
    n_waveform_channels: int = 4

    def key(self) -> str:
        return (f"{self.bin_size}|{self.window_size}|{self.refractory}|{self.shoulder}|"
                f"{self.max_amplitude_points}|{self.n_waveform_channels}")


@dataclass
class SortingData:
    """Everything the plugin needs from a sorting, as plain numpy arrays."""

    spike_times: np.ndarray  # seconds
    spike_clusters: np.ndarray
    spike_templates: np.ndarray
    amplitudes: np.ndarray | None
    templates: np.ndarray | None  # unwhitened, (n_templates, n_samples, n_channels)
    sample_rate: float
    duration_s: float
    similar_templates: np.ndarray | None = None
    groups: dict[int, str] = field(default_factory=dict)
    _index: dict[int, np.ndarray] | None = field(default=None, repr=False)

    @property
    def cluster_ids(self) -> np.ndarray:
        return np.array(sorted(self.index), dtype=np.int64)

    @property
    def index(self) -> dict[int, np.ndarray]:
        """Spike indices of every cluster (computed once)."""
        if self._index is None:
            sc = np.asarray(self.spike_clusters)
            order = np.argsort(sc, kind="stable")
            ids, starts = np.unique(sc[order], return_index=True)
            bounds = list(starts[1:]) + [len(order)]
            self._index = {int(c): order[s:e] for c, s, e in zip(ids, starts, bounds, strict=True)}
        return self._index

    def spikes(self, cluster_id: int) -> np.ndarray:
        return self.index.get(int(cluster_id), np.zeros(0, dtype=np.int64))

    def cluster_template(self, cluster_id: int) -> np.ndarray | None:
        """Spike-count-weighted mean of the templates of a cluster's spikes."""
        if self.templates is None:
            return None
        st = np.asarray(self.spike_templates)[self.spikes(cluster_id)]
        if len(st) == 0:
            return None
        tids, counts = np.unique(st, return_counts=True)
        w = counts / counts.sum()
        return np.tensordot(w, np.asarray(self.templates)[tids], axes=1)


def load_sorting(ks_dir: str | Path) -> SortingData:
    """Load a Kilosort/phy folder (numpy only) with phy's current clustering and labels."""
    from phy_plugins.core.kilosort import load_arrays
    from phy_plugins.core.tsv import read_cluster_tsv

    ks_dir = Path(ks_dir)
    arr = load_arrays(ks_dir)
    sim_path = ks_dir / "similar_templates.npy"
    similar = np.load(sim_path) if sim_path.exists() else None
    groups = {int(k): str(v) for k, v in read_cluster_tsv(ks_dir, "group").items()}
    return SortingData(
        spike_times=np.asarray(arr.spike_times, dtype=np.float64) / arr.sample_rate,
        spike_clusters=np.asarray(arr.spike_clusters, dtype=np.int64),
        spike_templates=np.asarray(arr.spike_templates, dtype=np.int64),
        amplitudes=None if arr.amplitudes is None else np.asarray(arr.amplitudes, dtype=float),
        templates=np.asarray(arr.unwhitened_templates(), dtype=np.float32),
        sample_rate=arr.sample_rate,
        duration_s=arr.duration_s,
        similar_templates=similar,
        groups=groups,
    )


@dataclass
class PairEvidence:
    """What the judges and the renderer see for one pair (a < b)."""

    a: int
    b: int
    n_a: int
    n_b: int
    similarity: float | None
    lags_ms: np.ndarray
    acg_a: np.ndarray
    acg_b: np.ndarray
    ccg: np.ndarray  # counts of B spikes at lag t_B - t_A
    times_a: np.ndarray
    amps_a: np.ndarray
    times_b: np.ndarray
    amps_b: np.ndarray
    duration_s: float
    refractory_ms: float
    # exact pair counts: (inside the refractory window, in both shoulders)
    ccg_counts: tuple[int, int]
    acg_a_counts: tuple[int, int]
    acg_b_counts: tuple[int, int]
    shoulder_ms: tuple[float, float]
    waveform_a: np.ndarray | None = None  # (n_samples, n_best_channels)
    waveform_b: np.ndarray | None = None
    waveform_channels: np.ndarray | None = None
    content_hash: str = ""


def _pair_counts(t1: np.ndarray, t2: np.ndarray, lo: float, hi: float, same: bool) -> int:
    """Number of (i, j) spike pairs with lo <= |t2[j] - t1[i]| < hi (i != j when same)."""
    def within(w: float) -> int:  # pairs with |dt| < w
        k = np.searchsorted(t2, t1 + w, "left") - np.searchsorted(t2, t1 - w, "right")
        return int(np.maximum(k, 0).sum())

    n = within(hi)
    if lo > 0:
        n -= within(lo)
    elif same:
        n -= len(t1)  # each spike with itself
    return int(n)


def _counts(t1, t2, p: EvidenceParams, same: bool) -> tuple[int, int]:
    inside = _pair_counts(t1, t2, 0.0, p.refractory, same)
    shoulder = _pair_counts(t1, t2, p.shoulder[0], p.shoulder[1], same)
    return inside, shoulder


def _subsample(idx: np.ndarray, n: int) -> np.ndarray:
    if len(idx) <= n:
        return idx
    return idx[np.linspace(0, len(idx) - 1, n).astype(np.int64)]


def evidence_hash(data: SortingData, a: int, b: int, params: EvidenceParams) -> str:
    """Content hash of a pair's evidence: the spikes of both clusters plus the settings."""
    h = hashlib.sha256(f"{EVIDENCE_VERSION}|{int(a)}|{int(b)}|{params.key()}".encode())
    for c in (a, b):
        idx = np.ascontiguousarray(data.spikes(c), dtype=np.int64)
        h.update(len(idx).to_bytes(8, "little"))
        h.update(idx.tobytes())
    return h.hexdigest()


def pair_evidence(data: SortingData, a: int, b: int, similarity: float | None = None,
                  params: EvidenceParams | None = None, waveforms: bool = True) -> PairEvidence:
    """Compute the evidence for the pair (a, b)."""
    p = params or EvidenceParams()
    a, b = sorted((int(a), int(b)))
    ia, ib = data.spikes(a), data.spikes(b)
    st = np.asarray(data.spike_times)
    ta, tb = np.sort(st[ia]), np.sort(st[ib])
    # phylib's correlograms on the two clusters only (symmetrised, window in seconds).
    idx = np.concatenate([ia, ib])
    order = np.argsort(st[idx], kind="stable")
    times = st[idx][order]
    clus = np.concatenate([np.zeros(len(ia), np.int64), np.ones(len(ib), np.int64)])[order]
    cc = correlograms(times, clus, cluster_ids=[0, 1], sample_rate=data.sample_rate,
                      bin_size=p.bin_size, window_size=p.window_size)
    n_bins = cc.shape[-1]
    lags = (np.arange(n_bins) - n_bins // 2) * p.bin_size * 1000
    amps = np.asarray(data.amplitudes) if data.amplitudes is not None else None
    sa, sb = _subsample(ia, p.max_amplitude_points), _subsample(ib, p.max_amplitude_points)
    ev = PairEvidence(
        a=a, b=b, n_a=len(ia), n_b=len(ib), similarity=similarity, lags_ms=lags,
        acg_a=cc[0, 0].astype(float), acg_b=cc[1, 1].astype(float), ccg=cc[0, 1].astype(float),
        times_a=st[sa], amps_a=amps[sa] if amps is not None else np.zeros(len(sa)),
        times_b=st[sb], amps_b=amps[sb] if amps is not None else np.zeros(len(sb)),
        duration_s=float(data.duration_s), refractory_ms=p.refractory * 1000,
        ccg_counts=_counts(ta, tb, p, same=False),
        acg_a_counts=_counts(ta, ta, p, same=True),
        acg_b_counts=_counts(tb, tb, p, same=True),
        shoulder_ms=(p.shoulder[0] * 1000, p.shoulder[1] * 1000),
        content_hash=evidence_hash(data, a, b, p),
    )
    if waveforms:
        wa, wb = data.cluster_template(a), data.cluster_template(b)
        if wa is not None and wb is not None:
            ptp = np.ptp(wa, axis=0) + np.ptp(wb, axis=0)
            ch = np.sort(np.argsort(ptp)[::-1][:p.n_waveform_channels])
            ev.waveform_a, ev.waveform_b, ev.waveform_channels = wa[:, ch], wb[:, ch], ch
    return ev
