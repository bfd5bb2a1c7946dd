"""Chunk sources for the detection worker: replay of a recording and a ring buffer.

A source's ``read(timeout)`` returns ``(start_index, chunk)`` or ``None`` (nothing yet), and
``exhausted`` tells when no more data will come. Reads never block a producer.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import numpy as np


class ChunkSource(Protocol):
    sample_rate: float
    n_channels: int

    @property
    def exhausted(self) -> bool: ...

    def read(self, timeout: float = 0.1) -> tuple[int, np.ndarray] | None: ...


class ReplaySource:
    """Replays ``traces[start:stop]`` in ``chunk_ms`` chunks at ``speed`` x real time.

    ``traces`` is anything sliceable as ``traces[a:b] -> (n, channels)`` (phylib's lazy
    ``model.traces``, a memmap, an array). ``speed=0`` (or ``inf``) replays as fast as possible.
    """

    def __init__(self, traces, sample_rate: float, *, start: int = 0, stop: int | None = None,
                 chunk_ms: float = 10.0, speed: float = 1.0, clock=time.monotonic) -> None:
        n_total = int(traces.shape[0])
        self.traces = traces
        self.sample_rate = float(sample_rate)
        self.n_channels = int(traces.shape[1])
        self.start = int(np.clip(start, 0, n_total))
        self.stop = n_total if stop is None else int(np.clip(stop, self.start, n_total))
        self.chunk = max(1, int(round(chunk_ms * 1e-3 * self.sample_rate)))
        self.speed = float(speed)
        self._clock = clock
        self._pos = self.start
        self._t0: float | None = None

    @property
    def position(self) -> int:
        """Next sample to be read."""
        return self._pos

    @property
    def exhausted(self) -> bool:
        return self._pos >= self.stop

    def read(self, timeout: float = 0.1) -> tuple[int, np.ndarray] | None:
        """Next chunk once it is due (waits at most ``timeout`` seconds)."""
        if self.exhausted:
            return None
        now = self._clock()
        if self._t0 is None:
            self._t0 = now
        end = min(self._pos + self.chunk, self.stop)
        if 0 < self.speed < np.inf:
            due = self._t0 + (end - self.start) / (self.sample_rate * self.speed)
            wait = due - now
            if wait > timeout:
                time.sleep(max(0.0, timeout))
                return None
            if wait > 0:
                time.sleep(wait)
        start = self._pos
        chunk = np.asarray(self.traces[start:end])
        self._pos = end
        return start, chunk


class RingBufferSource:
    """Bounded ring buffer that an acquisition thread ``push``es chunks into.

    ``push`` never blocks: when the reader falls behind by more than ``capacity`` samples the
    oldest data are overwritten and counted in ``overrun_samples``; the next ``read`` then
    starts at the oldest sample still held (the gap is visible in its start index).
    """

    def __init__(self, n_channels: int, sample_rate: float, capacity: int, dtype=np.int16) -> None:
        if capacity < 1 or n_channels < 1:
            raise ValueError("capacity and n_channels must be >= 1")
        self.n_channels = int(n_channels)
        self.sample_rate = float(sample_rate)
        self.capacity = int(capacity)
        self._data = np.zeros((self.capacity, self.n_channels), dtype=dtype)
        self._written = 0  # total samples ever pushed
        self._read = 0  # next absolute sample to read
        self._closed = False
        self.overrun_samples = 0
        self._cond = threading.Condition()

    def push(self, chunk: np.ndarray) -> None:
        """Append samples (producer thread); overwrites the oldest data when full."""
        x = np.asarray(chunk)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"chunk must have shape (samples, {self.n_channels}), got {x.shape}")
        if len(x) > self.capacity:
            x = x[-self.capacity:]
            skipped = len(chunk) - self.capacity
        else:
            skipped = 0
        with self._cond:
            self._written += skipped
            pos = self._written % self.capacity
            first = min(len(x), self.capacity - pos)
            self._data[pos:pos + first] = x[:first]
            self._data[:len(x) - first] = x[first:]
            self._written += len(x)
            oldest = self._written - self.capacity
            if self._read < oldest:
                self.overrun_samples += oldest - self._read
                self._read = oldest
            self._cond.notify_all()

    def close(self) -> None:
        """The producer is done; readers drain what is left, then the source is exhausted."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def exhausted(self) -> bool:
        with self._cond:
            return self._closed and self._read >= self._written

    def read(self, timeout: float = 0.1) -> tuple[int, np.ndarray] | None:
        """All samples not read yet (a copy), waiting up to ``timeout`` for some to arrive."""
        with self._cond:
            if self._read >= self._written and not self._closed:
                self._cond.wait(timeout)
            if self._read >= self._written:
                return None
            start, end = self._read, self._written
            idx = np.arange(start, end) % self.capacity
            out = self._data[idx]
            self._read = end
            return start, out
