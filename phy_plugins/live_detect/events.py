"""``AnalysisEvent``: the seed's per-event record, built from an :class:`EventBatch`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .detector import EventBatch
from .metrics import event_properties


@dataclass(frozen=True)
class AnalysisEvent:
    """One detected event (seed field names in snake_case).

    The window is aligned on the peak: ``samples[pre_samples]`` is the peak sample.
    ``crossing_index`` is where the signal went beyond threshold before that peak.
    """

    id: int
    channel: int
    threshold: float  # signed level crossed, signal units
    crossing_index: int  # absolute sample
    crossing_time_s: float
    peak_index: int  # absolute sample of the peak (alignment point)
    peak_time_s: float
    first_sample_index: int  # absolute sample of samples[0]
    first_sample_time_s: float
    sample_rate: float
    window_ms: float
    pre_ms: float
    post_ms: float
    amplitude: float
    sigma: float
    samples: np.ndarray = field(repr=False)
    properties: dict[str, float] = field(default_factory=dict)
    interval_since_last_s: float = math.nan  # same channel; NaN for its first event
    cluster: int = -1  # matched sorted cluster, -1 if none


def to_events(batch: EventBatch, *, metrics: bool = True, clusters: np.ndarray | None = None) -> list[AnalysisEvent]:
    """Convert a batch into :class:`AnalysisEvent` objects (with metric properties)."""
    sr = batch.sample_rate
    n_pre = batch.n_pre
    width = batch.waveforms.shape[1]
    out = []
    for i in range(len(batch)):
        wf = batch.waveforms[i]
        peak = int(batch.peak_index[i])
        cross = int(batch.crossing_index[i])
        first = peak - n_pre
        interval = int(batch.interval[i])
        out.append(AnalysisEvent(
            id=int(batch.event_id[i]), channel=int(batch.channel[i]), threshold=float(batch.threshold[i]),
            crossing_index=cross, crossing_time_s=cross / sr, peak_index=peak, peak_time_s=peak / sr,
            first_sample_index=first, first_sample_time_s=first / sr, sample_rate=sr,
            window_ms=1000.0 * width / sr, pre_ms=1000.0 * n_pre / sr, post_ms=1000.0 * (width - n_pre) / sr,
            amplitude=float(batch.amplitude[i]), sigma=float(batch.sigma[i]), samples=wf,
            properties=event_properties(wf, sr, n_pre) if metrics else {},
            interval_since_last_s=interval / sr if interval >= 0 else math.nan,
            cluster=int(clusters[i]) if clusters is not None else -1,
        ))
    return out
