"""Offline detection over a Kilosort/phy folder's raw data, and event export (.npy/.csv)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.atomic import atomic_write_bytes
from ..core.kilosort import DatasetError, KilosortArrays, load_arrays, read_params
from .config import FILTER_BAND, ThresholdConfig
from .detector import EventBatch, StreamingDetector
from .matching import ClusterMatcher

EVENT_FIELDS = ("sample_index", "time_s", "channel", "raw_channel", "amplitude", "threshold",
                "crossing_index", "cluster")


@dataclass
class FolderResult:
    """Events of a folder run, their matched clusters and the per-cluster recall."""

    events: EventBatch
    clusters: np.ndarray  # matched sorted cluster per event, -1 if none
    recall: dict[int, tuple[int, int]]
    raw_channel: np.ndarray  # channel_map entry of each event's channel
    start: int
    stop: int


def cluster_best_channels(arrays: KilosortArrays) -> dict[int, int]:
    """Best channel (largest template peak-to-peak) of each cluster's most used template."""
    tpl = np.asarray(arrays.templates)
    best_of_template = np.ptp(tpl, axis=1).argmax(axis=1)
    ids, cl = np.unique(np.asarray(arrays.spike_clusters), return_inverse=True)
    st = np.asarray(arrays.spike_templates).astype(np.int64).ravel()
    n_t = int(st.max(initial=0)) + 1
    # one sort for all clusters instead of a pass over all spikes per cluster: count the
    # (cluster, template) pairs, then take each cluster's most used template (lowest on a tie)
    pairs, counts = np.unique(cl.ravel() * n_t + st, return_counts=True)
    cluster = pairs // n_t
    order = np.lexsort((-counts, cluster))
    _, first = np.unique(cluster[order], return_index=True)
    t = pairs[order[first]] % n_t
    best = best_of_template[np.minimum(t, len(best_of_template) - 1)]
    return dict(zip(ids.tolist(), best.tolist(), strict=True))


def detect_folder(ks_dir: str | Path, *, start_s: float = 0.0, duration_s: float | None = None,
                  filter_band: tuple[float, float] | None | str = "auto",
                  progress: Callable[[float], None] | None = None, **settings: Any) -> FolderResult:
    """Run the streaming detector over the folder's raw data (channel-mapped, 1 s chunks).

    ``filter_band="auto"`` band-passes 300-6000 Hz unless ``params.py`` says ``hp_filtered``.
    Raises :class:`DatasetError` when the raw file is missing.
    """
    arrays = load_arrays(ks_dir)
    traces = arrays.traces()
    if traces is None:
        raise DatasetError(f"{ks_dir}: raw data file not found (dat_path in params.py)")
    if filter_band == "auto":
        hp = bool(read_params(ks_dir).get("hp_filtered", False)) if (Path(ks_dir) / "params.py").exists() else False
        filter_band = None if hp else (FILTER_BAND[0], min(FILTER_BAND[1], 0.45 * arrays.sample_rate))
    sr = arrays.sample_rate
    cmap = np.asarray(arrays.channel_map, dtype=np.int64)
    if cmap.max(initial=-1) >= traces.shape[1]:
        raise DatasetError(f"{ks_dir}: channel_map refers to channel {cmap.max()} but the raw file has "
                           f"{traces.shape[1]} channels")
    start = int(np.clip(round(start_s * sr), 0, traces.shape[0]))
    stop = traces.shape[0] if duration_s is None else int(min(traces.shape[0], start + round(duration_s * sr)))
    config = ThresholdConfig(filter_band=filter_band, **settings)
    det = StreamingDetector(sr, len(cmap), arrays.channel_positions, config, start_index=start)

    def chunks():  # 1 s of channel-mapped rows at a time, reporting progress after each
        for a in range(start, stop, int(sr)):
            b = min(a + int(sr), stop)
            yield np.asarray(traces[a:b])[:, cmap]
            if progress is not None:
                progress((b - start) / max(1, stop - start))

    events = det.run(chunks())
    matcher = ClusterMatcher(arrays.spike_times, arrays.spike_clusters, cluster_best_channels(arrays),
                             arrays.channel_positions, sr)
    clusters = matcher.match(events.peak_index, events.channel)
    matcher.mark_range(start, stop)
    return FolderResult(events, clusters, matcher.recall(), cmap[events.channel], start, stop)


def events_table(result: FolderResult) -> np.ndarray:
    """The events as a structured array with :data:`EVENT_FIELDS`."""
    ev = result.events
    dtype = [("sample_index", "i8"), ("time_s", "f8"), ("channel", "i4"), ("raw_channel", "i4"),
             ("amplitude", "f4"), ("threshold", "f4"), ("crossing_index", "i8"), ("cluster", "i8")]
    out = np.zeros(len(ev), dtype=dtype)
    out["sample_index"] = ev.peak_index
    out["time_s"] = ev.peak_index / ev.sample_rate
    out["channel"] = ev.channel
    out["raw_channel"] = result.raw_channel
    out["amplitude"] = ev.amplitude
    out["threshold"] = ev.threshold
    out["crossing_index"] = ev.crossing_index
    out["cluster"] = result.clusters
    return out


def write_events(path: str | Path, table: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write the events atomically as ``.npy`` (structured) or ``.csv``; never silently overwrite."""
    path = Path(path)
    if path.suffix not in (".npy", ".csv"):
        raise ValueError(f"{path}: the output must end in .npy or .csv")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    if path.suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, table)
        return atomic_write_bytes(path, buf.getvalue())
    lines = [",".join(table.dtype.names)]
    lines += [",".join(_fmt(v) for v in row) for row in table.tolist()]
    return atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def _fmt(v: object) -> str:
    return f"{v:.9g}" if isinstance(v, float) else str(v)
