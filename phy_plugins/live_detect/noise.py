"""Slow-cadence noise estimation on a subsample (never a full median per chunk).

The recording is cut into blocks of ``block`` samples starting at ``start``. From block ``k``
every ``stride``-th sample of its first ``window`` samples is collected; when complete, the
per-channel median and sigma = MAD / 0.6745 are estimated. Estimate 0 applies from ``start``
(so detection waits for the first window), estimate ``k >= 1`` from ``start + (k + 1) * block``.
Everything depends on absolute sample indices only, so any chunking gives the same estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAD_TO_SIGMA = 1.0 / 0.6745


@dataclass(frozen=True)
class NoiseEstimate:
    """Per-channel noise estimate valid from absolute sample ``apply_from`` on."""

    apply_from: int
    median: np.ndarray  # (C,) float64
    sigma: np.ndarray  # (C,) float64; 0 means a dead (flat) channel


def mad_sigma(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel median and MAD/0.6745 of a (n, C) array (float64 results).

    The median is the element of rank n // 2 (one partition instead of two for even n). One
    float32 (C, n) copy is made, then partitioned and turned into deviations in place; integers
    of at most 16 bits (exact in float32, as are their deviations) are copied to int32 instead,
    which partitions faster and gives the same values."""
    samples = np.asarray(samples)
    small_int = samples.dtype.kind in "iu" and samples.dtype.itemsize <= 2
    v = np.array(samples.T, dtype=np.int32 if small_int else np.float32, order="C")
    k = v.shape[1] // 2
    v.partition(k, axis=1)
    med = v[:, k].copy()
    np.subtract(v, med[:, None], out=v)
    np.abs(v, out=v)
    v.partition(k, axis=1)
    return med.astype(np.float64), v[:, k].astype(np.float64) * MAD_TO_SIGMA


class NoiseTracker:
    """Collect subsamples chunk by chunk and emit :class:`NoiseEstimate` objects."""

    def __init__(self, start: int, block: int, window: int, stride: int) -> None:
        if not (1 <= window <= block) or stride < 1:
            raise ValueError("need 1 <= window <= block and stride >= 1")
        self.start, self.block, self.window, self.stride = start, block, window, stride
        self._k = 0
        self._parts: list[np.ndarray] = []

    def feed(self, chunk_start: int, x: np.ndarray) -> list[NoiseEstimate]:
        """Consume rows ``[chunk_start, chunk_start + len(x))``; return completed estimates."""
        out = []
        end = chunk_start + len(x)
        while True:
            b0 = self.start + self._k * self.block
            w_end = b0 + self.window
            lo = max(chunk_start, b0)
            hi = min(end, w_end)
            if lo < hi:
                first = b0 + -(-(lo - b0) // self.stride) * self.stride
                if first < hi:
                    self._parts.append(x[first - chunk_start:hi - chunk_start:self.stride])
            if end < w_end:
                return out
            out.append(self._finish())
            if end <= self.start + self._k * self.block:
                return out

    def flush(self) -> NoiseEstimate | None:
        """Estimate from a partial first window (short recordings); None if nothing seen."""
        if self._k == 0 and self._parts:
            return self._finish()
        return None

    def _finish(self) -> NoiseEstimate:
        med, sigma = mad_sigma(np.concatenate(self._parts, axis=0))
        k = self._k
        apply_from = self.start if k == 0 else self.start + (k + 1) * self.block
        self._k += 1
        self._parts = []
        return NoiseEstimate(apply_from, med, sigma)
