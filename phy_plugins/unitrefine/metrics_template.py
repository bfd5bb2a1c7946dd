"""Template metrics with SpikeInterface 0.102's names, defaults and definitions.

Input: one cluster's template in microvolts, ``(n_samples, n_channels)``, with the channel positions.
The single-channel metrics use the extremum channel upsampled 10x (as SpikeInterface does).
"""

from __future__ import annotations

import math

import numpy as np

TEMPLATE_METRICS = (
    "peak_to_valley",
    "peak_trough_ratio",
    "half_width",
    "repolarization_slope",
    "recovery_slope",
    "num_positive_peaks",
    "num_negative_peaks",
    "velocity_above",
    "velocity_below",
    "exp_decay",
    "spread",
)

# SpikeInterface 0.102 defaults
RECOVERY_WINDOW_MS = 0.7
PEAK_RELATIVE_THRESHOLD = 0.2
PEAK_WIDTH_MS = 0.1
MIN_CHANNELS_FOR_VELOCITY = 5
MIN_R2_VELOCITY = 0.5
MIN_R2_EXP_DECAY = 0.5
SPREAD_THRESHOLD = 0.2
SPREAD_SMOOTH_UM = 20.0
UPSAMPLING = 10
SPARSITY_RADIUS_UM = 100.0


def trough_and_peak(t: np.ndarray) -> tuple[int, int]:
    trough = int(np.argmin(t))
    return trough, trough + int(np.argmax(t[trough:]))


def half_width(t: np.ndarray, fs: float, trough: int, peak: int) -> float:
    if peak == 0:
        return math.nan
    thr = 0.5 * t[trough]
    pre = np.where(t[:trough] < thr)[0]
    post = np.where(t[trough:] < thr)[0]
    if len(pre) == 0 or len(post) == 0:
        return math.nan
    return ((post[-1] + 1 + trough) - (pre[0] - 1)) / fs


def _slope(t: np.ndarray, fs: float, a: int, b: int) -> float:
    """Least-squares slope of ``t[a:b]`` against time in seconds."""
    x, y = np.arange(a, b) / fs, t[a:b]
    if len(x) < 2:
        return math.nan
    xm = x - x.mean()
    den = float(np.sum(xm * xm))
    return float(np.sum(xm * (y - y.mean())) / den) if den > 0 else math.nan


def repolarization_slope(t: np.ndarray, fs: float, trough: int) -> float:
    if trough == 0:
        return math.nan
    back = np.nonzero(t[trough:] >= 0)[0]
    if len(back) == 0:
        return math.nan
    end = back[0] + trough
    if end - trough < 3:
        return math.nan
    return _slope(t, fs, trough, end)


def recovery_slope(t: np.ndarray, fs: float, peak: int) -> float:
    if peak == 0:
        return math.nan
    return _slope(t, fs, peak, min(int(peak + RECOVERY_WINDOW_MS / 1000 * fs), len(t)))


def number_of_peaks(t: np.ndarray, fs: float) -> tuple[int, int]:
    from scipy.signal import find_peaks

    height = PEAK_RELATIVE_THRESHOLD * np.max(np.abs(t))
    width = int(PEAK_WIDTH_MS / 1000 * fs)
    return len(find_peaks(t, height=height, width=width)[0]), len(find_peaks(-t, height=height, width=width)[0])


def _theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, r2) of a Theil-Sen fit (median of pairwise slopes)."""
    i, j = np.triu_indices(len(x), 1)
    dx = x[j] - x[i]
    ok = dx != 0
    if not ok.any():
        return math.nan, -math.inf
    slope = float(np.median((y[j] - y[i])[ok] / dx[ok]))
    intercept = float(np.median(y - slope * x))
    resid = y - (slope * x + intercept)
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1 - float(np.sum(resid**2)) / ss if ss > 0 else -math.inf
    return slope, r2


def velocities(template: np.ndarray, pos: np.ndarray, fs: float) -> tuple[float, float]:
    """Propagation speed (um/ms) above and below the extremum channel along depth (y)."""
    order = np.argsort(pos[:, 1], kind="stable")
    template, pos = template[:, order], pos[order]
    s, ch = np.unravel_index(np.argmin(template), template.shape)
    t0 = s / fs * 1000
    out = []
    for side in (pos[:, 1] >= pos[ch, 1], pos[:, 1] <= pos[ch, 1]):
        if side.sum() < MIN_CHANNELS_FOR_VELOCITY:
            out.append(math.nan)
            continue
        times = np.argmin(template[:, side], axis=0) / fs * 1000 - t0
        dist = np.linalg.norm(pos[side] - pos[ch], axis=1)
        slope, r2 = _theil_sen(times.astype(float), dist)
        out.append(slope if r2 >= MIN_R2_VELOCITY else math.nan)
    return out[0], out[1]


def exp_decay(template: np.ndarray, pos: np.ndarray) -> float:
    """Decay constant (1/um) of the peak-to-peak amplitude with distance from the extremum channel."""
    from scipy.optimize import curve_fit

    amps = np.ptp(template, axis=0).astype(float)
    dist = np.linalg.norm(pos - pos[np.argmax(amps)], axis=1)
    order = np.argsort(dist)
    d, a = dist[order], amps[order]

    def model(x, decay, amp0, offset):
        return amp0 * np.exp(-decay * x) + offset

    try:
        amp0, off0 = a[0], np.min(a)
        popt, _ = curve_fit(model, d, a, p0=[1e-3, amp0, off0],
                            bounds=([1e-5, amp0 - 0.5 * amp0, 0], [2, amp0 + 0.5 * amp0, 2 * off0 + 1e-12]))
        pred = model(d, *popt)
        ss = np.sum((a - a.mean()) ** 2)
        r2 = 1 - np.sum((a - pred) ** 2) / ss if ss > 0 else -math.inf
        return float(popt[0]) if r2 >= MIN_R2_EXP_DECAY else math.nan
    except (RuntimeError, ValueError):
        return math.nan


def spread(template: np.ndarray, pos: np.ndarray) -> float:
    """Depth range (um) of channels whose smoothed peak-to-peak exceeds 20 % of the maximum."""
    from scipy.ndimage import gaussian_filter1d

    order = np.argsort(pos[:, 1], kind="stable")
    template, pos = template[:, order], pos[order]
    mm = np.ptp(template, axis=0).astype(float)
    depths = pos[:, 1]
    steps = np.diff(np.unique(depths))
    if len(steps):
        mm = gaussian_filter1d(mm, SPREAD_SMOOTH_UM / np.median(steps))
    if mm.max() <= 0:
        return math.nan
    mm = mm / mm.max()
    return float(np.ptp(depths[mm > SPREAD_THRESHOLD]))


def template_metrics(template_uv: np.ndarray, positions: np.ndarray, fs: float) -> dict[str, float]:
    """All template metrics of one cluster template ``(n_samples, n_channels)`` in microvolts."""
    from scipy.signal import resample_poly

    out = dict.fromkeys(TEMPLATE_METRICS, math.nan)
    if template_uv.size == 0 or not np.any(template_uv):
        return out
    main = int(np.argmin(template_uv.min(axis=0)))
    single = resample_poly(template_uv[:, main].astype(float), up=UPSAMPLING, down=1)
    fs_up = fs * UPSAMPLING
    trough, peak = trough_and_peak(single)
    out["peak_to_valley"] = (peak - trough) / fs_up
    out["peak_trough_ratio"] = float(single[peak] / single[trough]) if single[trough] != 0 else math.nan
    out["half_width"] = half_width(single, fs_up, trough, peak)
    out["repolarization_slope"] = repolarization_slope(single, fs_up, trough)
    out["recovery_slope"] = recovery_slope(single, fs_up, peak)
    pos_n, neg_n = number_of_peaks(single, fs_up)
    out["num_positive_peaks"], out["num_negative_peaks"] = float(pos_n), float(neg_n)
    near = np.linalg.norm(positions - positions[main], axis=1) <= SPARSITY_RADIUS_UM
    multi = resample_poly(template_uv[:, near].astype(float), up=UPSAMPLING, down=1, axis=0)
    pos = positions[near]
    out["velocity_above"], out["velocity_below"] = velocities(multi, pos, fs_up)
    out["exp_decay"] = exp_decay(multi, pos)
    out["spread"] = spread(multi, pos)
    return out
