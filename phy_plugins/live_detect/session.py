"""Detection worker: source -> detector -> bounded event queue, off the GUI thread.

``DetectionSession.run`` is a plain loop (use :meth:`start_thread`, or hand it to
``core.tasks.BackgroundTask`` in phy). The consumer polls :meth:`drain`. When the consumer
falls behind, the oldest queued events are dropped and counted; the source is never blocked.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .config import ThresholdConfig
from .detector import EventBatch, StreamingDetector
from .events import AnalysisEvent, to_events
from .matching import ClusterMatcher
from .settings import SettingsStore
from .sources import ChunkSource

logger = logging.getLogger("phy")


@dataclass
class SessionStats:
    """Counters shown to the user (a copy is returned by :meth:`DetectionSession.stats`)."""

    position: int = 0  # next absolute sample to process
    chunks: int = 0
    samples: int = 0
    events: int = 0  # detected (all channels)
    delivered: int = 0  # put in the queue
    dropped: int = 0  # discarded because the queue was full or over the per-chunk limit
    gap_samples: int = 0  # samples lost by the source (ring-buffer overrun)
    restarts: int = 0  # detector rebuilt (gap or a setting that needs it)
    busy_s: float = 0.0  # time spent processing
    rate_hz: float = 0.0  # events per second of signal over the last second
    running: bool = False
    error: str = ""
    dead_channels: list[int] = field(default_factory=list)


class TraceHistory:
    """The last ``capacity`` samples of a few channels for the scrolling display, kept as the
    min and max of each ``bin`` samples (computed by the worker, so redraws stay cheap)."""

    def __init__(self, channels: list[int], capacity: int, bin: int = 1) -> None:
        self._lock = threading.Lock()
        self.bin = max(1, int(bin))
        self.n_bins = max(1, int(capacity) // self.bin)
        self.set_channels(channels)

    def set_channels(self, channels: list[int]) -> None:
        with self._lock:
            self.channels = list(channels)
            self._data = np.full((self.n_bins, 2, len(self.channels)), np.nan, np.float32)
            self._pos = 0  # ring index of the next bin
            self._end = -1  # absolute sample after the last complete bin (-1: nothing yet)
            self._carry = np.zeros((0, len(self.channels)), np.float32)

    def append(self, start: int, x: np.ndarray) -> None:
        with self._lock:
            if not self.channels:
                return
            if self._end >= 0 and start != self._end + len(self._carry):
                self._carry = self._carry[:0]  # discontinuity: restart binning here
            cols = np.asarray(x[:, self.channels], np.float32)
            if len(self._carry):
                cols = np.concatenate([self._carry, cols])
                start -= len(self._carry)
            n_full = len(cols) // self.bin
            self._carry = cols[n_full * self.bin:].copy()
            if n_full == 0:
                return
            keep = min(n_full, self.n_bins)
            blocks = cols[(n_full - keep) * self.bin:n_full * self.bin].reshape(keep, self.bin, -1)
            mm = np.stack([blocks.min(axis=1), blocks.max(axis=1)], axis=1)
            first = min(keep, self.n_bins - self._pos)
            self._data[self._pos:self._pos + first] = mm[:first]
            self._data[:keep - first] = mm[first:]
            self._pos = (self._pos + keep) % self.n_bins
            self._end = start + n_full * self.bin

    def snapshot(self) -> tuple[np.ndarray, list[int], np.ndarray]:
        """``(sample index of each point, channels, (points, n_channels))``, oldest first: two
        points (min then max) per bin."""
        with self._lock:
            data = np.concatenate([self._data[self._pos:], self._data[:self._pos]])
            end = max(self._end, 0)
        first_bin = end - self.n_bins * self.bin
        t = first_bin + np.repeat(np.arange(self.n_bins) * self.bin, 2) + np.tile([0, self.bin - 1], self.n_bins)
        return t, list(self.channels), data.reshape(2 * self.n_bins, -1)


class DetectionSession:
    """Runs a :class:`StreamingDetector` over a :class:`ChunkSource` in a worker thread."""

    def __init__(self, source: ChunkSource, store: SettingsStore[ThresholdConfig],
                 channel_positions: np.ndarray | None = None, *, queue_size: int = 1000,
                 max_events_per_chunk: int = 200, matcher: ClusterMatcher | None = None,
                 display_channels: list[int] | None = None, display_s: float = 1.0,
                 display_points: int = 2000) -> None:
        self.source = source
        self.store = store
        self.positions = channel_positions
        self.matcher = matcher
        self.max_events_per_chunk = int(max_events_per_chunk)
        self.queue: collections.deque[AnalysisEvent] = collections.deque(maxlen=max(1, int(queue_size)))
        n_display = int(display_s * source.sample_rate)
        self.history = TraceHistory(display_channels or [], n_display, bin=max(1, n_display // display_points))
        self._stats = SessionStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._new_config: ThresholdConfig | None = None
        self._detector: StreamingDetector | None = None
        self._recent: collections.deque[tuple[int, int]] = collections.deque()
        self._thread: threading.Thread | None = None
        self._unsubscribe = store.subscribe(self._on_settings, replay=False)
        self.levels: np.ndarray | None = None  # (2, C) lower/upper threshold levels (NaN if unused)

    # -- control --------------------------------------------------------------------
    def start_thread(self) -> threading.Thread:
        """Run :meth:`run` in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="live_detect", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """Ask the loop to finish (it flushes the detector and returns)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread started by :meth:`start_thread`; True if it ended."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Stop and unsubscribe from the settings store."""
        self.stop()
        self._unsubscribe()

    def stats(self) -> SessionStats:
        with self._lock:
            return replace(self._stats, dead_channels=list(self._stats.dead_channels))

    def drain(self, max_items: int | None = None) -> list[AnalysisEvent]:
        """Pop queued events (consumer side, any thread)."""
        out = []
        while self.queue and (max_items is None or len(out) < max_items):
            try:
                out.append(self.queue.popleft())
            except IndexError:
                break
        return out

    # -- worker loop ----------------------------------------------------------------
    def run(self, progress: Any = None) -> SessionStats:
        """Process chunks until stopped, cancelled (``progress.cancelled``) or the source ends."""
        with self._lock:
            self._stats.running = True
        try:
            while not self._stop.is_set() and not getattr(progress, "cancelled", False):
                item = self.source.read(timeout=0.05)
                if item is None:
                    if self.source.exhausted:
                        break
                    continue
                self._process(*item)
            if self._detector is not None:
                self._publish(self._detector.flush(), self._detector.end_index)
        except Exception as exc:
            with self._lock:
                self._stats.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            with self._lock:
                self._stats.running = False
            self._stop.set()
        return self.stats()

    def _on_settings(self, config: ThresholdConfig) -> None:
        with self._lock:
            self._new_config = config

    def _new_detector(self, start: int) -> StreamingDetector:
        n_ch = self.source.n_channels
        return StreamingDetector(self.source.sample_rate, n_ch, self.positions, self.store.get(), start)

    def _process(self, start: int, chunk: np.ndarray) -> None:
        t0 = time.perf_counter()
        det = self._detector
        with self._lock:
            config, self._new_config = self._new_config, None
        if det is not None and (start != det.end_index or config is not None):
            restart = start != det.end_index
            if not restart:
                try:
                    det.reconfigure(config)
                except ValueError:
                    restart = True
            if restart:
                self._publish(det.flush(), det.end_index)
                with self._lock:
                    self._stats.restarts += 1
                    self._stats.gap_samples += max(0, start - det.end_index)
                det = None
        if det is None:
            det = self._detector = self._new_detector(start)
            if self.matcher is not None and self._stats.chunks == 0:
                self.matcher.reset()
        batch = det.process(chunk)
        self.history.append(start, det.last_chunk)
        self._publish(batch, det.end_index)
        self.levels = det.threshold_levels()
        with self._lock:
            s = self._stats
            s.chunks += 1
            s.samples += len(chunk)
            s.position = det.end_index
            s.busy_s += time.perf_counter() - t0
            s.dead_channels = det.dead_channels.tolist()

    def _publish(self, batch: EventBatch, end: int) -> None:
        n = len(batch)
        clusters = None
        if self.matcher is not None:
            det = self._detector
            lag = (det.n_post + det.sweep) if det is not None else 0
            if n:
                clusters = self.matcher.match(batch.peak_index, batch.channel)
            if det is not None:
                self.matcher.mark_range(det.start_index, max(det.start_index, end - lag))
        sr = self.source.sample_rate
        self._recent.append((end, n))
        while self._recent and self._recent[0][0] <= end - sr:
            self._recent.popleft()
        keep = min(n, self.max_events_per_chunk)
        events = to_events(batch.select(slice(0, keep)), clusters=None if clusters is None else clusters[:keep])
        dropped = n - keep
        for ev in events:
            if len(self.queue) == self.queue.maxlen:
                dropped += 1
            self.queue.append(ev)
        with self._lock:
            s = self._stats
            s.events += n
            s.delivered += len(events)
            s.dropped += dropped
            s.rate_hz = sum(k for _, k in self._recent) / 1.0
