"""Event metrics: pure functions of a waveform, returning 0.0 on invalid input."""

from __future__ import annotations

import numpy as np


def _valid(samples: np.ndarray, sr: float | None = None, min_len: int = 1) -> np.ndarray | None:
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size < min_len or not np.all(np.isfinite(x)):
        return None
    if sr is not None and not (np.isfinite(sr) and sr > 0):
        return None
    return x


def baseline(samples: np.ndarray, pre_samples: int) -> float:
    """Median of the ``pre_samples`` samples before the event (0.0 if none)."""
    x = _valid(samples)
    if x is None or pre_samples < 1:
        return 0.0
    return float(np.median(x[:int(pre_samples)]))


def energy_density(samples: np.ndarray, sr: float) -> float:
    """Hann-windowed RMS of the waveform (signal units), the seed's energy density."""
    x = _valid(samples, sr, 2)
    if x is None:
        return 0.0
    w = np.hanning(x.size)
    if w.sum() <= 0:
        return 0.0
    return float(np.sqrt(np.sum(w * (x - x.mean()) ** 2) / w.sum()))


def envelope(samples: np.ndarray) -> float:
    """Peak of the analytic-signal envelope |x + i H(x)| (mean removed)."""
    x = _valid(samples, None, 2)
    if x is None:
        return 0.0
    n = x.size
    spec = np.fft.fft(x - x.mean())
    h = np.zeros(n)
    h[0] = 1.0
    if n % 2 == 0:
        h[n // 2] = 1.0
        h[1:n // 2] = 2.0
    else:
        h[1:(n + 1) // 2] = 2.0
    return float(np.abs(np.fft.ifft(spec * h)).max())


def min_max(samples: np.ndarray) -> tuple[float, float]:
    """``(max, min)`` of the waveform; ``(0.0, 0.0)`` for invalid input."""
    x = _valid(samples)
    if x is None:
        return 0.0, 0.0
    return float(x.max()), float(x.min())


def _parabolic(y0: float, y1: float, y2: float) -> float:
    """Sub-sample offset of the extremum of a parabola through three points."""
    den = y0 - 2.0 * y1 + y2
    return 0.0 if den == 0 else 0.5 * (y0 - y2) / den


def autocorr_frequency(segment: np.ndarray, sr: float, min_hz: float = 50.0, max_hz: float = 4000.0) -> float:
    """Dominant frequency from the highest autocorrelation peak with a lag in [sr/max_hz, sr/min_hz]."""
    x = _valid(segment, sr, 4)
    if x is None or not (0 < min_hz < max_hz):
        return 0.0
    x = x - x.mean()
    if not np.any(x):
        return 0.0
    n = x.size
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * n)) ** 2)[:n]
    lag_lo = max(1, int(np.floor(sr / max_hz)))
    lag_hi = min(n - 2, int(np.ceil(sr / min_hz)))
    if lag_hi <= lag_lo:
        return 0.0
    lags = np.arange(lag_lo, lag_hi + 1)
    peaks = lags[(ac[lags] > ac[lags - 1]) & (ac[lags] >= ac[lags + 1])]
    if peaks.size == 0:
        return 0.0
    k = int(peaks[np.argmax(ac[peaks])])
    lag = k + _parabolic(ac[k - 1], ac[k], ac[k + 1])
    f = sr / lag
    return float(f) if min_hz <= f <= max_hz else 0.0


def peak_frequency_sinc(samples: np.ndarray, sr: float, min_hz: float = 50.0,
                        center_index: int | None = None) -> float:
    """Peak of the Hann-windowed, detrended, zero-padded (>= 4096 points) spectrum.

    The magnitude is smoothed with a 3-tap kernel and the peak refined by quadratic
    interpolation in [min_hz, min(sr / 2.5, 4 kHz)]. A ~20 ms segment around
    ``center_index`` is used when the input is longer. Falls back to
    :func:`autocorr_frequency` when the two estimates differ by more than 25 %.
    """
    x = _valid(samples, sr, 4)
    if x is None or min_hz < 0:
        return 0.0
    half = int(round(0.01 * sr))
    if center_index is not None and x.size > 2 * half:
        c = int(np.clip(center_index, half, x.size - half))
        x = x[c - half:c + half]
    t = np.arange(x.size)
    x = x - np.polyval(np.polyfit(t, x, 1), t)
    if not np.any(np.abs(x) > 1e-12):
        return 0.0
    n_fft = max(4096, 1 << int(np.ceil(np.log2(x.size))))
    mag = np.abs(np.fft.rfft(x * np.hanning(x.size), n_fft))
    mag = np.convolve(mag, [0.25, 0.5, 0.25], mode="same")
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    f_hi = min(sr / 2.5, 4000.0)
    band = np.flatnonzero((freqs >= min_hz) & (freqs <= f_hi))
    if band.size < 3:
        return 0.0
    k = int(band[np.argmax(mag[band])])
    if k <= 0 or k >= mag.size - 1:
        return 0.0
    f = (k + _parabolic(mag[k - 1], mag[k], mag[k + 1])) * sr / n_fft
    f_ac = autocorr_frequency(x, sr, max(min_hz, 1e-6), f_hi)
    if f_ac > 0 and abs(f_ac - f) > 0.25 * f:
        return f_ac
    return float(f)


def event_properties(samples: np.ndarray, sr: float, pre_samples: int) -> dict[str, float]:
    """The metric readouts attached to each event."""
    mx, mn = min_max(samples)
    return {
        "baseline": baseline(samples, pre_samples),
        "energy_density": energy_density(samples, sr),
        "envelope": envelope(samples),
        "max": mx,
        "min": mn,
        "peak_frequency_hz": peak_frequency_sinc(samples, sr),
    }
