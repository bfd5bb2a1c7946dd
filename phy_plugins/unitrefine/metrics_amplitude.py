"""Amplitude, drift and SNR metrics (SpikeInterface 0.102 names and definitions).

Per-spike amplitudes come from Kilosort's scaling (``amplitudes.npy``) times the cluster template's
extremum in microvolts (an approximation), or, with the opt-in ``raw_amplitudes`` and the raw file,
from the filtered raw traces (:mod:`.raw_amplitudes`). ``snr`` needs the raw file.
"""

from __future__ import annotations

import math

import numpy as np

AMPLITUDE_METRICS = ("amplitude_median", "amplitude_cutoff", "amplitude_cv_median", "amplitude_cv_range")
DRIFT_METRICS = ("drift_ptp", "drift_std", "drift_mad")


def amplitude_cutoff(amps: np.ndarray, n_bins: int = 100, smoothing: float = 3, min_ratio: float = 5) -> float:
    """Estimated fraction of spikes missing below the detection threshold (Hill et al.)."""
    from scipy.ndimage import gaussian_filter1d

    amps = np.asarray(amps, dtype=float)
    if len(amps) / n_bins < min_ratio:
        return math.nan
    if np.median(amps) < 0:
        amps = -amps
    # smoothed integer counts stay integers (truncated), as in SpikeInterface
    pdf = gaussian_filter1d(np.histogram(amps, n_bins)[0], smoothing, mode="nearest")
    last = np.where(pdf >= pdf[0])[0][-1]
    missed = np.sum(pdf[last + 1:])
    return float(min(missed / (len(amps) + missed), 0.5))


def amplitude_cv(st: np.ndarray, amps: np.ndarray, total_samples: int, fs: float, spikes_per_bin: int = 50,
                 percentiles=(5, 95), min_bins: int = 10) -> tuple[float, float]:
    """(median, p95 - p5) of the coefficient of variation of amplitudes in bins of ~50 spikes."""
    n = len(st)
    if n == 0:
        return math.nan, math.nan
    rate = n / (total_samples / fs)
    bin_samples = int(spikes_per_bin / rate * fs)
    if bin_samples <= 0:
        return math.nan, math.nan
    edges = np.arange(0, total_samples + 1, bin_samples)
    bounds = np.searchsorted(st, edges, side="left")
    mean = abs(np.mean(amps))
    cvs = [np.std(amps[a:b]) / mean if b > a else math.nan for a, b in zip(bounds[:-1], bounds[1:])]
    if len(cvs) < min_bins:
        return math.nan, math.nan
    return float(np.median(cvs)), float(np.percentile(cvs, percentiles[1]) - np.percentile(cvs, percentiles[0]))


def amplitude_metrics(st: np.ndarray, amps_uv: np.ndarray, total_samples: int, fs: float) -> dict[str, float]:
    """The four amplitude metrics of one cluster (NaN if any amplitude is missing)."""
    if len(amps_uv) == 0 or not np.isfinite(amps_uv).all():
        return dict.fromkeys(AMPLITUDE_METRICS, math.nan)
    cv_med, cv_range = amplitude_cv(st, amps_uv, total_samples, fs)
    return {
        "amplitude_median": float(np.abs(np.median(amps_uv))),
        "amplitude_cutoff": amplitude_cutoff(amps_uv),
        "amplitude_cv_median": cv_med,
        "amplitude_cv_range": cv_range,
    }


def drift_metrics(st: np.ndarray, depth_um: np.ndarray, total_samples: int, fs: float, interval_s: float = 60,
                  min_spikes: int = 100, min_valid: float = 0.5, min_bins: int = 2) -> dict[str, float]:
    """Peak-to-peak, std and MAD of the median spike depth in 60 s intervals around the overall median."""
    nan = dict.fromkeys(DRIFT_METRICS, math.nan)
    bin_samples = int(interval_s * fs)
    edges = np.arange(0, total_samples // bin_samples * bin_samples + 1, bin_samples)
    if len(st) == 0 or len(edges) - 1 < min_bins:
        return nan
    bounds = np.searchsorted(st, edges, side="left")
    medians = np.array([np.median(depth_um[a:b]) if b - a >= min_spikes else np.nan
                        for a, b in zip(bounds[:-1], bounds[1:])])
    diff = medians - np.median(depth_um)
    if np.sum(np.isnan(diff)) > min_valid * len(diff):
        return nan
    return {
        "drift_ptp": float(np.nanmax(diff) - np.nanmin(diff)),
        "drift_std": float(np.nanstd(diff)),
        "drift_mad": float(np.nanmedian(np.abs(diff - np.nanmedian(diff)))),
    }


def noise_levels(traces: np.ndarray, gain_uv: float, fs: float, *, highpass: bool, n_chunks: int = 20,
                 chunk_size: int = 10000, seed: int = 0) -> np.ndarray:
    """Per-channel noise (MAD / 0.6745) in microvolts from random chunks of the raw file."""
    rng = np.random.default_rng(seed)
    n = traces.shape[0]
    size = min(chunk_size, n)
    starts = rng.integers(0, max(n - size, 1), size=n_chunks)
    data = np.concatenate([_filtered(traces, s, s + size, fs, highpass) for s in starts]) * gain_uv
    med = np.median(data, axis=0)
    return np.median(np.abs(data - med), axis=0) / 0.6744897501960817


def _highpass(x: np.ndarray, fs: float) -> np.ndarray:
    """Zero-phase 5th-order Butterworth high-pass at 300 Hz along time (axis 0)."""
    from scipy.signal import butter, sosfiltfilt

    return sosfiltfilt(butter(5, 300.0, btype="highpass", fs=fs, output="sos"), x, axis=0)


def _filtered(traces: np.ndarray, a: int, b: int, fs: float, highpass: bool, margin: int = 3000) -> np.ndarray:
    lo, hi = max(a - margin, 0), min(b + margin, traces.shape[0])
    chunk = np.asarray(traces[lo:hi], dtype=np.float32)
    if highpass:
        chunk = _highpass(chunk, fs).astype(np.float32)
    return chunk[a - lo: a - lo + (b - a)]


def raw_template(traces: np.ndarray, st: np.ndarray, gain_uv: float, fs: float, *, highpass: bool,
                 n_before: int, n_after: int, max_spikes: int = 500, seed: int = 0,
                 margin: int = 600) -> np.ndarray | None:
    """Mean filtered waveform ``(n_samples, n_channels)`` in microvolts of up to ``max_spikes`` random spikes.

    Filtering is linear, so the mean of the raw windows (with a margin) is filtered once.
    """
    n = traces.shape[0]
    pad = margin if highpass else 0
    st = st[(st >= n_before + pad) & (st < n - n_after - pad)]
    if len(st) == 0:
        return None
    rng = np.random.default_rng(seed)
    if len(st) > max_spikes:
        st = np.sort(rng.choice(st, max_spikes, replace=False))
    acc = np.zeros((n_before + n_after + 2 * pad, traces.shape[1]))
    for t in st:
        acc += traces[int(t) - n_before - pad: int(t) + n_after + pad]
    mean = acc / len(st)
    if highpass:
        mean = _highpass(mean, fs)
    return mean[pad: pad + n_before + n_after] * gain_uv


def snr(template_uv: np.ndarray, noise_uv: np.ndarray) -> float:
    """|extremum on the main (most negative) channel| / that channel's noise level."""
    main = int(np.argmin(template_uv.min(axis=0)))
    amp = abs(float(template_uv[:, main].min()))
    return float(amp / noise_uv[main]) if noise_uv[main] > 0 else math.nan
