"""Synthetic signals with known spikes for the live_detect tests (helper, not a test file)."""

from __future__ import annotations

import numpy as np


def linear_probe(n_channels: int, pitch_um: float = 20.0) -> np.ndarray:
    """Single-column probe positions (n, 2)."""
    return np.c_[np.zeros(n_channels), np.arange(n_channels) * pitch_um]


def spike_shape(sample_rate: float, trough_at: int, length: int) -> np.ndarray:
    """A biphasic unit-depth spike with its trough (-1) at index ``trough_at``."""
    t = (np.arange(length) - trough_at) / sample_rate * 1e3  # ms
    shape = -np.exp(-(t / 0.12) ** 2) + 0.35 * np.exp(-((t - 0.45) / 0.25) ** 2)
    return shape / -shape[trough_at]


def make_recording(rng: np.random.Generator, n_samples: int, n_channels: int, sample_rate: float,
                   spikes: list[tuple[int, int, float]], noise_sd: float = 10.0,
                   spread_um: float = 25.0, pitch_um: float = 20.0) -> np.ndarray:
    """Gaussian noise plus spikes ``(trough sample, peak channel, amplitude)``; float32.

    Each spike decays with distance from its channel (Gaussian, ``spread_um``), so its
    trough is largest on its own channel and identical in time on all channels.
    """
    x = rng.normal(0.0, noise_sd, (n_samples, n_channels)).astype(np.float32)
    pre = int(round(0.001 * sample_rate))
    length = pre + int(round(0.002 * sample_rate))
    shape = spike_shape(sample_rate, pre, length)
    depth = np.arange(n_channels) * pitch_um
    for t, ch, amp in spikes:
        gain = np.exp(-((depth - depth[ch]) / spread_um) ** 2)
        a, b = t - pre, t - pre + length
        lo, hi = max(a, 0), min(b, n_samples)
        if lo < hi:
            x[lo:hi] += (amp * shape[lo - a:hi - a, None] * gain[None, :]).astype(np.float32)
    return x


def spaced_spikes(rng: np.random.Generator, n_samples: int, n_channels: int, n_spikes: int,
                  min_gap: int, amp_range: tuple[float, float], margin: int = 0) -> list[tuple[int, int, float]]:
    """Random spikes at least ``min_gap`` samples apart."""
    out = []
    t = margin
    while len(out) < n_spikes:
        t += min_gap + int(rng.integers(0, min_gap))
        if t >= n_samples - margin:
            break
        out.append((t, int(rng.integers(0, n_channels)), float(rng.uniform(*amp_range))))
    return out
