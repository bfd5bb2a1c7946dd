"""Streaming threshold detector: feed (samples, channels) chunks, get peak-aligned events.

The result never depends on how the signal is chunked: noise blocks, thresholds, refractory
state and the peak neighbourhood are all defined on absolute sample indices, the buffer keeps
enough history for the lookback, and an event is emitted only once its post window arrived.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np

from .config import ThresholdConfig
from .filters import CausalBandpass
from .kernel import BLOCK, SEG, apply_refractory, compact_rows, detect_rows, gather
from .neighbours import neighbour_csr
from .noise import NoiseEstimate, NoiseTracker

_MODES = {"neg": 0, "pos": 1, "both": 2}
#: settings that can change on a running detector (the others need a new detector)
HOT_SETTINGS = frozenset({"polarity", "auto_k_sigma", "refractory_s", "per_channel_thresholds"})


@dataclass
class EventBatch:
    """Detected events as parallel arrays (one row per event, in time order)."""

    event_id: np.ndarray  # int64, 0, 1, 2... in detection order
    peak_index: np.ndarray  # int64 absolute sample of the peak (alignment point)
    channel: np.ndarray  # int64 channel (column of the traces)
    amplitude: np.ndarray  # float64 signal value at the peak (filtered if a filter is on)
    threshold: np.ndarray  # float64 signed threshold level that was crossed
    sigma: np.ndarray  # float64 noise sigma used (NaN with fixed thresholds)
    crossing_index: np.ndarray  # int64 first sample of the beyond-threshold run
    interval: np.ndarray  # int64 samples since the previous event on the channel, -1 if none
    waveforms: np.ndarray  # (n, n_pre + n_post) float32, window starts n_pre before the peak
    n_pre: int
    sample_rate: float

    def __len__(self) -> int:
        return len(self.peak_index)

    @classmethod
    def empty(cls, n_pre: int, n_post: int, sample_rate: float) -> EventBatch:
        """A batch with no events."""
        i = np.zeros(0, np.int64)
        f = np.zeros(0, np.float64)
        return cls(i, i, i, f, f, f, i, i, np.zeros((0, n_pre + n_post), np.float32), n_pre, sample_rate)

    @classmethod
    def concat(cls, batches: list[EventBatch], waveforms: np.ndarray | None = None) -> EventBatch:
        """Join batches of the same detector in order (``waveforms``: already joined, not copied)."""
        first = batches[0]
        arrays = {f.name: np.concatenate([getattr(b, f.name) for b in batches])
                  for f in fields(cls) if f.name not in ("n_pre", "sample_rate", "waveforms")}
        if waveforms is None:
            waveforms = np.concatenate([b.waveforms for b in batches])
        return cls(**arrays, waveforms=waveforms, n_pre=first.n_pre, sample_rate=first.sample_rate)

    def select(self, mask: np.ndarray) -> EventBatch:
        """Subset of the events (boolean mask or index array)."""
        arrays = {f.name: getattr(self, f.name)[mask]
                  for f in fields(self) if f.name not in ("n_pre", "sample_rate")}
        return EventBatch(**arrays, n_pre=self.n_pre, sample_rate=self.sample_rate)


class StreamingDetector:
    """Locally exclusive threshold detector with state carried between chunks."""

    def __init__(self, sample_rate: float, n_channels: int, channel_positions: np.ndarray | None = None,
                 config: ThresholdConfig | None = None, start_index: int = 0) -> None:
        if not sample_rate > 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if int(n_channels) < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        if start_index < 0:
            raise ValueError("start_index must be >= 0")
        self.sample_rate = float(sample_rate)
        self.n_channels = int(n_channels)
        self.config = config = config or ThresholdConfig()
        sr = self.sample_rate
        self.n_pre = config.samples(config.window_pre_s, sr)
        self.n_post = config.samples(config.window_post_s, sr)
        self.sweep = config.samples(config.sweep_s, sr)
        self.nb_ptr, self.nb_idx = neighbour_csr(self.n_channels, channel_positions, config.radius_um)
        self._check_fixed(config)
        self.filter = (CausalBandpass(sr, config.filter_band, config.filter_order, self.n_channels)
                       if config.filter_band else None)
        self.start_index = int(start_index)
        self.noise = None if config.per_channel_thresholds else NoiseTracker(
            self.start_index, max(1, config.samples(config.noise_refresh_s, sr)),
            max(1, config.samples(config.noise_window_s, sr)), config.noise_stride)
        self._estimates: list[NoiseEstimate] = []
        if self.noise is None:
            zero = np.zeros(self.n_channels)
            self._estimates.append(NoiseEstimate(self.start_index, zero, np.full(self.n_channels, np.nan)))
        self._tables: tuple | None = None
        self._version = 0  # bumps whenever the threshold tables must be rebuilt
        ring = 1 << int(np.ceil(np.log2(BLOCK + self.sweep + max(self.sweep, self.n_pre) + 2)))
        n_seg = -(-self.n_channels // SEG)
        self._z = np.zeros((ring, n_seg * SEG), np.float32)  # score ring buffer of the kernel (zero padded)
        self._hit = np.zeros(ring, np.bool_)
        self._live = np.zeros((ring, n_seg), np.bool_)  # per row and segment of SEG channels
        self._out = np.empty((3, 0), np.int64)  # kernel outputs (rows, channels, crossings), reused
        self._amp = np.empty(0, np.float64)  # kernel output: signal value at each peak, reused
        self._room = 256  # waveform rows offered to the kernel per scan (grows with the event rate)
        self._dtype: np.dtype | None = None
        self._tail = np.zeros((0, self.n_channels))  # history rows kept from earlier chunks
        self._tail_start = self.start_index  # absolute index of the tail's first row
        self._scan_next = self.start_index
        self._last = np.full(self.n_channels, -1, np.int64)
        self._pending: EventBatch | None = None  # events waiting for their post window
        self._pending_filled = np.zeros(0, np.bool_)  # per pending event: waveform already copied
        self._next_id = 0
        self.finished = False
        self.last_chunk: np.ndarray = np.zeros((0, self.n_channels), np.float32)  # as detected (filtered)

    # -- public API -----------------------------------------------------------------
    @property
    def end_index(self) -> int:
        """Absolute index of the next sample expected."""
        return self._tail_start + len(self._tail)

    @property
    def ready(self) -> bool:
        """True once thresholds exist (auto mode waits for the first noise window)."""
        return bool(self._estimates)

    @property
    def sigma(self) -> np.ndarray | None:
        """Latest per-channel noise sigma (None before the first estimate)."""
        return self._estimates[-1].sigma if self._estimates else None

    def threshold_levels(self) -> np.ndarray | None:
        """Latest (2, C) signal levels: row 0 the negative threshold, row 1 the positive one
        (NaN where the polarity does not use it or the channel is dead)."""
        if not self._estimates:
            return None
        est = self._estimates[-1]
        mag = self._magnitudes(est)
        base = est.median if self.config.per_channel_thresholds is None else np.zeros(self.n_channels)
        out = np.full((2, self.n_channels), np.nan)
        if self.config.polarity in ("neg", "both"):
            out[0] = base - mag
        if self.config.polarity in ("pos", "both"):
            out[1] = base + mag
        out[:, ~np.isfinite(mag)] = np.nan
        return out

    @property
    def dead_channels(self) -> np.ndarray:
        """Channels whose noise sigma is zero or invalid (they never detect)."""
        s = self.sigma
        if s is None or self.config.per_channel_thresholds:
            return np.zeros(0, np.int64)
        return np.flatnonzero(~(s > 0))

    def process(self, chunk: np.ndarray) -> EventBatch:
        """Feed the next chunk (samples, channels); return the events now complete."""
        if self.finished:
            raise RuntimeError("detector already flushed; create a new one")
        x = self._prepare(chunk)
        self.last_chunk = x
        if self.noise is not None and len(x):
            for est in self.noise.feed(self.end_index, x):
                self._add_estimate(est)
        self._scan(x, final=False)
        out = self._emit(x, final=False)
        self._keep_tail(x)
        return out

    def run(self, chunks: Iterable[np.ndarray]) -> EventBatch:
        """Feed every chunk, flush, and return all events as one batch (offline use)."""
        batches = [self.process(chunk) for chunk in chunks]
        batches.append(self.flush())
        return EventBatch.concat(batches)

    def flush(self) -> EventBatch:
        """End of stream: detect up to the last sample and emit everything (edge padded)."""
        if self.finished:
            return EventBatch.empty(self.n_pre, self.n_post, self.sample_rate)
        if not self._estimates and self.noise is not None:
            est = self.noise.flush()
            if est is not None:
                self._add_estimate(est)
        empty = self._tail[:0]
        self._scan(empty, final=True)
        self.finished = True
        return self._emit(empty, final=True)

    def reconfigure(self, config: ThresholdConfig) -> None:
        """Apply ``config`` from the next sample on; only :data:`HOT_SETTINGS` may differ."""
        changed = {f.name for f in fields(config) if getattr(config, f.name) != getattr(self.config, f.name)}
        cold = changed - HOT_SETTINGS
        auto_switch = (config.per_channel_thresholds is None) != (self.config.per_channel_thresholds is None)
        if cold or auto_switch:
            raise ValueError(f"settings {sorted(cold) or ['per_channel_thresholds']} need a new detector")
        self._check_fixed(config)
        self.config = config
        self._version += 1

    # -- internals ------------------------------------------------------------------
    def _check_fixed(self, config: ThresholdConfig) -> None:
        thr = config.per_channel_thresholds
        if thr is not None and len(thr) != self.n_channels:
            raise ValueError(f"per_channel_thresholds has {len(thr)} values for {self.n_channels} channels")

    def _prepare(self, chunk: np.ndarray) -> np.ndarray:
        x = np.asarray(chunk)
        if x.ndim == 1 and self.n_channels == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"chunk must have shape (samples, {self.n_channels}), got {x.shape}")
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise ValueError(f"chunk dtype must be integer or float, got {x.dtype}")
        if self.filter is not None:
            x = self.filter(x) if len(x) else x.astype(np.float32)
        if self._dtype is None:
            self._dtype = x.dtype
            self._tail = self._tail.astype(x.dtype)
        elif not np.can_cast(x.dtype, self._dtype, "same_kind"):
            raise ValueError(f"chunk dtype {x.dtype} differs from the stream's {self._dtype}")
        return np.ascontiguousarray(x, dtype=self._dtype)

    def _keep_tail(self, x: np.ndarray) -> None:
        """Keep the rows still needed: scan lookback and pre windows of future/pending events."""
        keep_from = self._scan_next - max(self.sweep, self.n_pre)
        if self._pending is not None:
            keep_from = min(keep_from, int(self._pending.peak_index[0]) - self.n_pre)
        drop = max(0, keep_from - self._tail_start)
        na = len(self._tail)
        if drop >= na:
            self._tail = x[drop - na:].copy()
        else:
            self._tail = np.concatenate([self._tail[drop:], x])
        self._tail_start += drop

    def _add_estimate(self, est: NoiseEstimate) -> None:
        self._estimates.append(est)
        self._version += 1

    def _magnitudes(self, est: NoiseEstimate) -> np.ndarray:
        cfg = self.config
        if cfg.per_channel_thresholds is not None:
            return np.asarray(cfg.per_channel_thresholds, dtype=np.float64)
        mag = cfg.auto_k_sigma * est.sigma
        return np.where(mag > 0, mag, np.inf)

    def _build_tables(self) -> tuple:
        # drop estimates that no longer cover any buffered row
        while len(self._estimates) > 1 and self._estimates[1].apply_from <= self._tail_start:
            self._estimates.pop(0)
            self._version += 1
        if self._tables is not None and self._tables[0] == self._version:
            return self._tables
        mode = _MODES[self.config.polarity]
        k = len(self._estimates)
        off = np.zeros((k, self.n_channels))
        inv = np.zeros((k, self.n_channels))
        lo = np.full((k, self.n_channels), -np.inf)
        hi = np.full((k, self.n_channels), np.inf)
        sig = np.stack([e.sigma for e in self._estimates])
        for i, est in enumerate(self._estimates):
            mag = self._magnitudes(est)
            alive = np.isfinite(mag)
            off[i] = np.where(np.isfinite(est.median), est.median, 0.0)
            inv[i, alive] = 1.0 / mag[alive]
            # raw pre-test, widened by 0.1 % so that it is a superset of score >= 1 (float32)
            wide = 0.999 * mag[alive]
            if mode in (0, 2):
                lo[i, alive] = off[i, alive] - wide
            if mode in (1, 2):
                hi[i, alive] = off[i, alive] + wide
        if self._dtype is not None and self._dtype.kind in "iu" and self._dtype.itemsize <= 2:
            # integer data: compare in the data's own type (clamping keeps the test a superset)
            kind = self._dtype if self._dtype == np.int16 else np.dtype(np.int32)
            big = np.iinfo(kind)
            lo = np.clip(np.ceil(lo), big.min, big.max).astype(kind)
            hi = np.clip(np.floor(hi), big.min, big.max).astype(kind)
        elif self._dtype is not None and self._dtype.kind == "f":
            lo, hi = lo.astype(self._dtype), hi.astype(self._dtype)
        starts = np.array([e.apply_from for e in self._estimates], np.int64)
        self._tables = (self._version, lo, hi, off.astype(np.float32), inv.astype(np.float32), off, inv, sig,
                        starts, mode)
        return self._tables

    def _row_sets(self, starts: np.ndarray, n_rows: int) -> np.ndarray:
        rows = np.zeros(n_rows, np.int32)
        for i, s in enumerate(starts[1:], start=1):
            r = s - self._tail_start
            if r < n_rows:
                rows[max(r, 0):] = i
        return rows

    def _scan(self, x: np.ndarray, final: bool) -> None:
        if not self._estimates:
            return
        xa = self._tail
        n_rows = len(xa) + len(x)
        end = self._tail_start + n_rows
        limit = end if final else end - self.sweep
        row0 = self._scan_next - self._tail_start
        row1 = limit - self._tail_start
        if row1 <= row0:
            return
        _, lo, hi, off32, inv32, off, inv, sig_tab, starts, mode = self._build_tables()
        row_set = self._row_sets(starts, n_rows)
        cap = self.n_channels * ((row1 - row0) // (self.sweep + 1) + 1)  # at most one peak per sweep
        if self._out.shape[1] < cap:
            self._out = np.empty((3, cap), np.int64)
            self._amp = np.empty(cap, np.float64)
        out_row, out_ch, out_cross = self._out
        # the kernel writes the waveforms straight after those still pending (no extra copy);
        # rows it has no room for are gathered by _emit
        prev = self._pending
        n_prev = 0 if prev is None else len(prev)
        waves = np.empty((n_prev + self._room, self.n_pre + self.n_post), np.float32)
        if n_prev:
            waves[:n_prev] = prev.waveforms
        n, n_wave = detect_rows(xa, x, row0, row1, n_rows, row_set, lo, hi, off32, inv32, mode, self.sweep,
                                self.n_pre, self.nb_ptr, self.nb_idx, self._z, self._hit, self._live,
                                out_row, out_ch, out_cross, self._amp, waves[n_prev:])
        self._scan_next = limit
        self._room = max(self._room, 2 * n)
        if n == 0:
            return
        keep, interval = self._refractory(out_row[:n], out_ch[:n])
        kept = np.flatnonzero(keep)
        m = len(kept)
        if m == 0:
            return
        n_copied = int(np.searchsorted(kept, n_wave))  # the kernel copied events [0, n_wave)
        if m < n:
            compact_rows(waves[n_prev:], kept[:n_copied])
        rows, ch, crossing, amp = out_row[kept], out_ch[kept], out_cross[kept], self._amp[kept]
        abs_t = rows + self._tail_start
        interval = interval[kept]
        sets = row_set[rows]
        base = off[sets, ch]
        mag = 1.0 / inv[sets, ch]  # events only occur on live channels (inv > 0)
        sign = np.where(amp >= base, 1.0, -1.0) if mode == 2 else np.full(m, 1.0 if mode == 1 else -1.0)
        ids = np.arange(self._next_id, self._next_id + m, dtype=np.int64)
        self._next_id += m
        if n_prev + m > len(waves):  # more events than room (their waveforms are gathered by _emit)
            grown = np.empty((n_prev + m, waves.shape[1]), np.float32)
            grown[:n_prev + n_copied] = waves[:n_prev + n_copied]
            waves = grown
        waves = waves[:n_prev + m]
        new = EventBatch(ids, abs_t, ch, amp, base + sign * mag, sig_tab[sets, ch], crossing + self._tail_start,
                         interval, waves[n_prev:], self.n_pre, self.sample_rate)
        self._pending = new if prev is None else EventBatch.concat([prev, new], waveforms=waves)
        self._pending_filled = np.concatenate([self._pending_filled, np.arange(m) < n_copied])

    def _refractory(self, rows: np.ndarray, ch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keep mask of the kernel's peaks (refractory per channel) and their intervals."""
        keep = np.empty(len(rows), np.bool_)
        interval = np.full(len(rows), -1, np.int64)
        refr = self.config.samples(self.config.refractory_s, self.sample_rate)
        apply_refractory(rows + self._tail_start, ch, self._last, refr, keep, interval)
        return keep, interval

    def _emit(self, x: np.ndarray, final: bool) -> EventBatch:
        pend = self._pending
        if pend is None:
            return EventBatch.empty(self.n_pre, self.n_post, self.sample_rate)
        end = self._tail_start + len(self._tail) + len(x)
        n_ready = len(pend) if final else int(np.searchsorted(pend.peak_index, end - self.n_post, side="right"))
        if n_ready == 0:
            return EventBatch.empty(self.n_pre, self.n_post, self.sample_rate)
        filled = self._pending_filled
        ready = pend.select(slice(0, n_ready))  # views
        self._pending = pend.select(slice(n_ready, None)) if n_ready < len(pend) else None
        self._pending_filled = filled[n_ready:]
        miss = np.flatnonzero(~filled[:n_ready])  # waveforms the kernel could not copy yet
        if len(miss):
            w = np.empty((len(miss), self.n_pre + self.n_post), np.float32)
            gather(self._tail, x, ready.peak_index[miss] - self.n_pre - self._tail_start, ready.channel[miss], w)
            ready.waveforms[miss] = w
        return ready
