"""Causal band-pass filter whose state is carried across chunks."""

from __future__ import annotations

import numpy as np
from scipy import signal


class CausalBandpass:
    """Butterworth SOS band-pass (high-pass when ``high`` >= Nyquist), float32 output.

    Chunked filtering with the carried state is sample-for-sample the same computation as
    one pass over the whole signal.
    """

    def __init__(self, sample_rate: float, band: tuple[float, float], order: int, n_channels: int) -> None:
        low, high = band
        nyq = sample_rate / 2.0
        if low >= nyq:
            raise ValueError(f"filter low cut {low} Hz must be below Nyquist ({nyq} Hz)")
        if high >= nyq:
            self.sos = signal.butter(order, low, btype="highpass", fs=sample_rate, output="sos")
        else:
            self.sos = signal.butter(order, (low, high), btype="bandpass", fs=sample_rate, output="sos")
        self.zi: np.ndarray | None = None
        self.n_channels = n_channels

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        if self.zi is None:
            # steady state for the first sample: no start-up transient from a DC offset
            self.zi = signal.sosfilt_zi(self.sos)[:, :, None] * np.asarray(chunk[0], np.float64)[None, None, :]
        y, self.zi = signal.sosfilt(self.sos, chunk, axis=0, zi=self.zi)
        return y.astype(np.float32)
