"""One compact PNG per pair (matplotlib Agg, no pyplot: safe off the GUI thread).

One figure per layout is kept and only its artists' data, limits, ticks and labels change for
every pair (building a figure costs as much as drawing it). Drawing is CPU-bound and holds the
GIL, so threads take turns on the shared figure behind a lock.
"""
from __future__ import annotations

import hashlib
import io
import math
import threading

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .evidence import PairEvidence

COLOR_A = "#1f77b4"  # blue
COLOR_B = "#ff7f0e"  # orange
WIDTH_PX, HEIGHT_PX, DPI = 1024, 512, 100
MAX_WAVEFORM_CHANNELS = 4
_layouts: dict[tuple, _Layout] = {}
_lock = threading.Lock()


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return [lo] if np.isfinite(lo) else [0.0]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [round(v, 10) for v in np.arange(start, hi + step * 1e-9, step)]


class _Layout:
    """A figure with every artist created once; ``draw(ev)`` updates and renders it."""

    def __init__(self, waveforms: bool, width_px: int, height_px: int):
        self.waveforms = waveforms
        self.fig = fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
        FigureCanvasAgg(fig)
        ncol = 4 if waveforms else 3
        gs = fig.add_gridspec(2, ncol, hspace=0.55, wspace=0.3, left=0.05, right=0.99, top=0.9,
                              bottom=0.1)
        self.title = fig.suptitle("", fontsize=10)
        self.hists = []
        for j, color in enumerate((COLOR_A, "black", COLOR_B)):
            ax = fig.add_subplot(gs[0, j])
            steps = ax.stairs([0], [0, 1], fill=True, color=color, linewidth=0)
            band = ax.axvspan(-1, 1, color="red", alpha=0.18, linewidth=0)
            ax.set_xlabel("lag (ms)", fontsize=7)
            ax.tick_params(labelsize=6)
            self.hists.append((ax, steps, band))
        self.wf_ax, self.wf_lines = None, []
        if waveforms:
            ax = fig.add_subplot(gs[0, 3])
            ax.set_title("mean waveforms (best channels)", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            for _ in range(MAX_WAVEFORM_CHANNELS):
                la, = ax.plot([], [], color=COLOR_A, lw=1)
                lb, = ax.plot([], [], color=COLOR_B, lw=1, alpha=0.8)
                self.wf_lines.append((la, lb))
            self.wf_ax = ax
        ax = fig.add_subplot(gs[1, :])
        self.pts_a, = ax.plot([], [], ".", ms=2.5, color=COLOR_A, alpha=0.6, mew=0)
        self.pts_b, = ax.plot([], [], ".", ms=2.5, color=COLOR_B, alpha=0.6, mew=0)
        ax.set_xlabel("time (s)", fontsize=7)
        ax.set_ylabel("amplitude", fontsize=7)
        ax.set_title("amplitude over time", fontsize=9)
        ax.tick_params(labelsize=6)
        self.legend = ax.legend([self.pts_a, self.pts_b], ["A", "B"], loc="upper right",
                                fontsize=7, markerscale=4, frameon=False)
        self.amp_ax = ax

    def draw(self, ev: PairEvidence) -> bytes:
        self.title.set_text(f"A = cluster {ev.a} ({ev.n_a} spikes, blue)   "
                            f"B = cluster {ev.b} ({ev.n_b} spikes, orange)")
        lags = ev.lags_ms
        width = lags[1] - lags[0] if len(lags) > 1 else 1.0
        edges = np.append(lags - width / 2, lags[-1] + width / 2)
        titles = (f"ACG A ({ev.a})", f"CCG A-B ({ev.a}-{ev.b})", f"ACG B ({ev.b})")
        half = math.floor(edges[-1] / 10) * 10 or edges[-1]
        for (ax, steps, band), counts, title in zip(self.hists, (ev.acg_a, ev.ccg, ev.acg_b),
                                                    titles, strict=True):
            steps.set_data(counts, edges)
            band.set_x(-ev.refractory_ms)
            band.set_width(2 * ev.refractory_ms)
            top = max(float(np.max(counts)) if len(counts) else 0.0, 1.0) * 1.05
            ax.set_xlim(edges[0], edges[-1])
            ax.set_ylim(0, top)
            ax.set_xticks([-half, 0, half])
            ax.set_yticks([t for t in nice_ticks(0, top, 3) if t == int(t)])
            ax.set_title(title, fontsize=9)
        if self.waveforms:
            shown = ev.waveform_a is not None
            n_s, n_c = ev.waveform_a.shape if shown else (0, 0)
            scale = max(np.abs(ev.waveform_a).max(), np.abs(ev.waveform_b).max(), 1e-12) \
                if shown else 1.0
            x = np.arange(n_s)
            for i, (la, lb) in enumerate(self.wf_lines):
                if i < n_c:
                    off = (i - (n_c - 1) / 2) * 1.6 * n_s
                    la.set_data(x + off, ev.waveform_a[:, i] / scale)
                    lb.set_data(x + off, ev.waveform_b[:, i] / scale)
                else:
                    la.set_data([], [])
                    lb.set_data([], [])
            half_span = (max(n_c, 1) - 1) / 2 * 1.6 * n_s
            self.wf_ax.set_xlim(-half_span - 0.1 * n_s - 0.5, half_span + 1.1 * n_s + 0.5)
            self.wf_ax.set_ylim(-1.1, 1.1)
        self.pts_a.set_data(ev.times_a, ev.amps_a)
        self.pts_b.set_data(ev.times_b, ev.amps_b)
        self.legend.texts[0].set_text(f"A {ev.a}")
        self.legend.texts[1].set_text(f"B {ev.b}")
        amps = np.concatenate([ev.amps_a, ev.amps_b])
        lo, hi = (float(amps.min()), float(amps.max())) if len(amps) else (0.0, 1.0)
        pad = 0.05 * (hi - lo) or 1.0
        duration = max(ev.duration_s, 1e-3)
        ax = self.amp_ax
        ax.set_xlim(0, duration)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xticks(nice_ticks(0, duration, 10))
        ax.set_yticks(nice_ticks(lo - pad, hi + pad, 4))
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
        return buf.getvalue()


def render_pair(ev: PairEvidence, *, waveforms: bool = True,
                width_px: int = WIDTH_PX, height_px: int = HEIGHT_PX) -> bytes:
    """PNG bytes: ACG A, CCG A-B (refractory window shaded), ACG B, optional mean
    waveforms, and amplitude over time for both units."""
    key = (bool(waveforms), int(width_px), int(height_px))
    with _lock:
        if key not in _layouts:
            _layouts[key] = _Layout(*key)
        return _layouts[key].draw(ev)


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) read from a PNG header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def image_hash(png: bytes) -> str:
    """Short content hash of an image."""
    return hashlib.sha256(png).hexdigest()[:16]
