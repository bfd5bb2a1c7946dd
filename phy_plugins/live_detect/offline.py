"""One-call offline detection over a whole array, using the streaming detector."""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import ThresholdConfig
from .detector import EventBatch, StreamingDetector


def detect(traces: np.ndarray, sample_rate: float, channel_positions: np.ndarray | None = None,
           *, chunk_size: int | None = None, **settings: Any) -> EventBatch:
    """Detect events in ``traces`` (samples, channels), any integer/float dtype or memmap.

    ``settings`` are :class:`ThresholdConfig` fields (``polarity``, ``auto_k_sigma``,
    ``refractory_s``...). The array is fed to :class:`StreamingDetector` in chunks of
    ``chunk_size`` samples (default 1 s), so the result equals a live run over the same signal.
    """
    traces = np.asarray(traces) if not isinstance(traces, np.ndarray) else traces
    if traces.ndim == 1:
        traces = traces[:, None]
    if traces.ndim != 2:
        raise ValueError(f"traces must be (samples, channels), got shape {traces.shape}")
    config = ThresholdConfig(**settings)
    det = StreamingDetector(sample_rate, traces.shape[1], channel_positions, config)
    step = int(chunk_size or max(1, round(sample_rate)))
    if step < 1:
        raise ValueError("chunk_size must be >= 1")
    return det.run(traces[i:i + step] for i in range(0, traces.shape[0], step))
