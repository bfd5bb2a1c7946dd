"""Compute UnitRefine features for every cluster of a Kilosort/phy folder, without SpikeInterface.

Works on the current phy clustering (``spike_clusters``), so merged and split clusters get their
own values. Returns the table and a report of which metrics are exact, approximate or unavailable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from phy_plugins.core.kilosort import KilosortArrays, load_arrays, read_params
from phy_plugins.unitrefine.metrics_amplitude import (
    AMPLITUDE_METRICS,
    DRIFT_METRICS,
    amplitude_metrics,
    drift_metrics,
    noise_levels,
    raw_template,
    snr,
)
from phy_plugins.unitrefine.metrics_pca import PCA_METRICS, pca_metrics
from phy_plugins.unitrefine.metrics_spiketrain import (
    SPIKETRAIN_METRICS,
    cluster_spike_indices,
    spiketrain_metrics,
)
from phy_plugins.unitrefine.metrics_template import TEMPLATE_METRICS, template_metrics
from phy_plugins.unitrefine.raw_amplitudes import cluster_amplitudes

ALL_METRICS = SPIKETRAIN_METRICS + AMPLITUDE_METRICS + DRIFT_METRICS + ("snr",) + PCA_METRICS + TEMPLATE_METRICS
PCA_SPIKES_PER_CLUSTER = 500


@dataclass
class FeatureReport:
    """How each metric was obtained: ``exact``, ``approximate`` (with why) or ``unavailable`` (with why)."""

    approximate: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"unavailable {k}: {v}" for k, v in sorted(self.unavailable.items())]
        out += [f"approximate {k}: {v}" for k, v in sorted(self.approximate.items())]
        return out + [f"source {k}: {v}" for k, v in sorted(self.sources.items())]


def cluster_templates(arr: KilosortArrays, spikes: dict[int, np.ndarray], gain_uv: float,
                      unwhite: np.ndarray) -> dict[int, np.ndarray]:
    """Per-cluster template in microvolts: spike-weighted mean of (unwhitened template x mean amplitude)."""
    out = {}
    for cid, idx in spikes.items():
        tpl = np.asarray(arr.spike_templates[idx])
        ids, inv, counts = np.unique(tpl, return_inverse=True, return_counts=True)
        if arr.amplitudes is not None:
            mean_amp = np.bincount(inv, weights=np.asarray(arr.amplitudes[idx], float)) / counts
        else:
            mean_amp = np.ones(len(ids))
        ok = ids < len(unwhite)
        w = counts[ok] * mean_amp[ok] / max(counts[ok].sum(), 1)
        out[cid] = np.tensordot(w, unwhite[ids[ok]], axes=1) * gain_uv if ok.any() else np.zeros(unwhite.shape[1:])
    return out


def spike_amplitudes_uv(arr: KilosortArrays, idx: np.ndarray, template_uv: np.ndarray, gain_uv: float,
                        unwhite: np.ndarray) -> np.ndarray:
    """Approximate per-spike amplitude at the cluster's extremum: amplitude x template value there."""
    main = int(np.argmin(template_uv.min(axis=0)))
    peak = int(np.argmin(template_uv[:, main]))
    tpl = np.asarray(arr.spike_templates[idx])
    tpl = np.clip(tpl, 0, len(unwhite) - 1)
    values = unwhite[:, peak, main] * gain_uv
    return np.asarray(arr.amplitudes[idx], float) * values[tpl]


RAW_AMPLITUDES = "filtered raw traces at each spike's peak on the cluster's main channel"
KILOSORT_AMPLITUDES = "Kilosort amplitudes x template extremum (raw_amplitudes off, or no raw file)"


def _amplitude_rows(arr: KilosortArrays, traces: np.ndarray | None, spikes: dict[int, np.ndarray], wanted: list[int],
                    templates: dict[int, np.ndarray], unwhite: np.ndarray, gain_uv: float, params: dict, total: int,
                    rows: dict[int, dict[str, float]], report: FeatureReport) -> None:
    """Amplitude metrics from ``traces`` (given when ``raw_amplitudes`` is on and the raw file exists),
    else from Kilosort's amplitudes."""
    st_all = np.asarray(arr.spike_times)
    present = {c: spikes[c] for c in wanted if c in spikes}
    if traces is not None:
        amps = cluster_amplitudes(traces, st_all, present, gain_uv, arr.sample_rate,
                                  highpass=not bool(params.get("hp_filtered", False)))
        for c, a in amps.items():
            rows[c].update(amplitude_metrics(st_all[present[c]], a, total, arr.sample_rate))
        report.sources.update(dict.fromkeys(AMPLITUDE_METRICS, RAW_AMPLITUDES))
    elif arr.amplitudes is None:
        why = "needs amplitudes.npy (or raw_amplitudes and the raw file)"
        report.unavailable.update(dict.fromkeys(AMPLITUDE_METRICS, why))
    else:
        for c, t in templates.items():
            a = spike_amplitudes_uv(arr, present[c], t, gain_uv, unwhite)
            rows[c].update(amplitude_metrics(st_all[present[c]], a, total, arr.sample_rate))
        report.approximate.update(dict.fromkeys(AMPLITUDE_METRICS, KILOSORT_AMPLITUDES))


def spike_depths(arr: KilosortArrays) -> tuple[np.ndarray | None, str]:
    """Per-spike depth (um): Kilosort 4's ``spike_positions.npy``, else PC-energy centre of mass."""
    path = arr.ks_dir / "spike_positions.npy"
    if path.exists():
        pos = np.load(path, mmap_mode="r")
        return np.asarray(pos[:, 1], float), "Kilosort spike_positions.npy, not SpikeInterface's spike_locations"
    if arr.pc_features is None or arr.pc_feature_ind is None:
        return None, "needs spike_positions.npy or pc_features.npy"
    tpl = np.clip(np.asarray(arr.spike_templates), 0, len(arr.pc_feature_ind) - 1)
    chans = np.asarray(arr.pc_feature_ind)[tpl]
    w = np.asarray(arr.pc_features[:, 0, :], float) ** 2
    y = arr.channel_positions[np.clip(chans, 0, len(arr.channel_positions) - 1), 1]
    depth = np.sum(w * y, axis=1) / np.maximum(np.sum(w, axis=1), 1e-12)
    return depth, "spike depth from the centre of mass of Kilosort PC1 energy"


def _pc_points(arr: KilosortArrays, idx: np.ndarray, chans: np.ndarray) -> np.ndarray:
    """PC features of spikes ``idx`` (increasing) on the channels ``chans`` (0 where a spike has no value)."""
    tpl = np.clip(np.asarray(arr.spike_templates[idx]), 0, len(arr.pc_feature_ind) - 1)
    ind = np.asarray(arr.pc_feature_ind)[tpl]  # (n, nloc)
    match = (ind[:, :, None] == chans[None, None, :]).astype(np.float32)  # (n, nloc, ntarget)
    feats = np.asarray(arr.pc_features[idx], np.float32)
    return np.einsum("npj,nji->npi", feats, match).reshape(len(idx), -1)


def _pca_inputs(arr: KilosortArrays, spikes: dict[int, np.ndarray], wanted: Iterable[int],
                seed: int = 0) -> dict[int, dict[int, np.ndarray]]:
    rng = np.random.default_rng(seed)
    sampled = {c: np.sort(rng.choice(i, min(len(i), PCA_SPIKES_PER_CLUSTER), replace=False)) for c, i in spikes.items()}
    main_tpl = {c: int(np.bincount(np.asarray(arr.spike_templates[i])).argmax()) for c, i in spikes.items()}
    chans = {c: np.asarray(arr.pc_feature_ind[min(t, len(arr.pc_feature_ind) - 1)]) for c, t in main_tpl.items()}
    out = {}
    for c in wanted:
        if c not in spikes:
            continue
        groups = {}
        for k in spikes:
            if k == c or np.intersect1d(chans[k], chans[c]).size:
                groups[k] = _pc_points(arr, sampled[k], chans[c])
        out[c] = groups
    return out


def compute_features(
    ks_dir: str | Path,
    *,
    spike_clusters: np.ndarray | None = None,
    cluster_ids: Iterable[int] | None = None,
    names: Iterable[str] | None = None,
    gain_uv: float | None = None,
    use_raw: bool = True,
    raw_amplitudes: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[pd.DataFrame, FeatureReport]:
    """Metrics table (index ``cluster_id``) for the requested ``names`` (default: all).

    ``spike_clusters`` overrides the file (phy's current clustering); ``gain_uv`` converts template
    units to microvolts (default: ``gain_uv``/``gain_to_uV`` from params.py, else 1).
    """
    arr = load_arrays(ks_dir)
    if spike_clusters is not None:
        arr.spike_clusters = np.asarray(spike_clusters)
    names = list(ALL_METRICS if names is None else names)
    unknown = [n for n in names if n not in ALL_METRICS]
    report = FeatureReport(unavailable={n: "not a metric this bundle computes" for n in unknown})
    params = read_params(ks_dir) if (Path(ks_dir) / "params.py").exists() else {}
    if gain_uv is None:
        gain_uv = float(params.get("gain_uv") or params.get("gain_to_uV") or 1.0)
    fs = arr.sample_rate
    traces = arr.traces() if use_raw else None
    total = traces.shape[0] if traces is not None else (int(arr.spike_times.max()) + 1 if len(arr.spike_times) else 0)
    spikes = cluster_spike_indices(np.asarray(arr.spike_clusters))
    wanted = sorted(spikes) if cluster_ids is None else [int(c) for c in cluster_ids]
    rows: dict[int, dict[str, float]] = {c: {} for c in wanted}
    step = 0
    n_steps = 5

    def tick(text):
        nonlocal step
        step += 1
        if progress:
            progress(step, n_steps, text)

    st_all = np.asarray(arr.spike_times)
    if any(n in SPIKETRAIN_METRICS for n in names):
        for c, vals in spiketrain_metrics(st_all, arr.spike_clusters, total, fs, wanted).items():
            rows[c].update(vals)
        if traces is None:
            report.approximate.update({n: "recording length taken from the last spike (no raw file)"
                                       for n in ("firing_rate", "presence_ratio", "firing_range") if n in names})
    tick("spike-train metrics")
    amp_traces = traces if raw_amplitudes else None  # the raw path reads the whole file: opt-in
    need_amp_tpl = amp_traces is None and any(n in AMPLITUDE_METRICS for n in names)
    need_tpl = need_amp_tpl or any(n in TEMPLATE_METRICS for n in names)
    unwhite = arr.unwhitened_templates().astype(np.float32) if need_tpl else None
    templates = {}
    if need_tpl:
        templates = cluster_templates(arr, {c: spikes[c] for c in wanted if c in spikes}, gain_uv, unwhite)
    if any(n in TEMPLATE_METRICS for n in names):
        for c, t in templates.items():
            rows[c].update(template_metrics(t, arr.channel_positions, fs))
        for n in TEMPLATE_METRICS:
            report.approximate[n] = "from Kilosort's unwhitened templates, not the mean raw waveform"
    tick("template metrics")
    if any(n in AMPLITUDE_METRICS for n in names):
        _amplitude_rows(arr, amp_traces, spikes, wanted, templates, unwhite, gain_uv, params, total, rows, report)
    if any(n in DRIFT_METRICS for n in names):
        depth, how = spike_depths(arr)
        if depth is None:
            report.unavailable.update({n: how for n in DRIFT_METRICS})
        else:
            for c in wanted:
                if c in spikes:
                    idx = spikes[c]
                    rows[c].update(drift_metrics(st_all[idx], depth[idx], total, fs))
            report.approximate.update({n: how for n in DRIFT_METRICS})
    tick("amplitude and drift metrics")
    if "snr" in names:
        if traces is None:
            report.unavailable["snr"] = "needs the raw recording (dat_path in params.py)"
        else:
            hp = not bool(params.get("hp_filtered", False))
            noise = noise_levels(traces, gain_uv, fs, highpass=hp)
            n_before, n_after = int(1.0e-3 * fs), int(1.5e-3 * fs)
            for c in wanted:
                if c in spikes:
                    w = raw_template(traces, st_all[spikes[c]], gain_uv, fs, highpass=hp,
                                     n_before=n_before, n_after=n_after)
                    rows[c]["snr"] = snr(w, noise) if w is not None else math.nan
    tick("snr")
    if any(n in PCA_METRICS for n in names):
        if arr.pc_features is None or arr.pc_feature_ind is None:
            report.unavailable.update({n: "needs pc_features.npy and pc_feature_ind.npy" for n in PCA_METRICS})
        else:
            for c, vals in pca_metrics(_pca_inputs(arr, spikes, wanted)).items():
                rows[c].update(vals)
            report.approximate.update({n: "Kilosort's whitened PC features, not SpikeInterface's PCA"
                                       for n in PCA_METRICS})
    tick("PC metrics")
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame = frame.reindex(columns=[n for n in names if n in ALL_METRICS])
    frame.index.name = "cluster_id"
    for n in frame.columns:
        if n not in report.unavailable and frame[n].isna().all() and len(frame):
            report.unavailable[n] = "could not be computed for any cluster (too few spikes or too short recording)"
    report.approximate = {k: v for k, v in report.approximate.items() if k in names and k not in report.unavailable}
    report.sources = {k: v for k, v in report.sources.items() if k in names and k not in report.unavailable}
    report.unavailable = {k: v for k, v in report.unavailable.items() if k in names}
    return frame.astype(float), report
