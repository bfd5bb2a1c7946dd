"""One compact PNG per pair (matplotlib Agg, no pyplot: safe off the GUI thread)."""
from __future__ import annotations

import hashlib
import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .evidence import PairEvidence

COLOR_A = "#1f77b4"  # blue
COLOR_B = "#ff7f0e"  # orange
WIDTH_PX, HEIGHT_PX, DPI = 1024, 512, 100


def _bars(ax, lags, counts, color, title, refractory_ms):
    width = lags[1] - lags[0] if len(lags) > 1 else 1.0
    edges = np.append(lags - width / 2, lags[-1] + width / 2)
    ax.stairs(counts, edges, fill=True, color=color, linewidth=0)
    ax.axvspan(-refractory_ms, refractory_ms, color="red", alpha=0.18, linewidth=0)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("lag (ms)", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.set_xlim(lags[0] - width / 2, lags[-1] + width / 2)
    _few_ticks(ax)


def _few_ticks(ax, nx: int = 5, ny: int = 3) -> None:
    """Fewer ticks: cheaper to draw and easier to read at this size."""
    ax.xaxis.set_major_locator(MaxNLocator(nx))
    ax.yaxis.set_major_locator(MaxNLocator(ny, integer=True))


def render_pair(ev: PairEvidence, *, waveforms: bool = True,
                width_px: int = WIDTH_PX, height_px: int = HEIGHT_PX) -> bytes:
    """PNG bytes: ACG A, CCG A-B (refractory window shaded), ACG B, optional mean
    waveforms, and amplitude over time for both units."""
    show_wf = waveforms and ev.waveform_a is not None
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ncol = 4 if show_wf else 3
    gs = fig.add_gridspec(2, ncol, height_ratios=[1, 1], hspace=0.55, wspace=0.3,
                          left=0.05, right=0.99, top=0.9, bottom=0.1)
    fig.suptitle(f"A = cluster {ev.a} ({ev.n_a} spikes, blue)   "
                 f"B = cluster {ev.b} ({ev.n_b} spikes, orange)", fontsize=10)
    _bars(fig.add_subplot(gs[0, 0]), ev.lags_ms, ev.acg_a, COLOR_A, f"ACG A ({ev.a})",
          ev.refractory_ms)
    _bars(fig.add_subplot(gs[0, 1]), ev.lags_ms, ev.ccg, "black", f"CCG A-B ({ev.a}-{ev.b})",
          ev.refractory_ms)
    _bars(fig.add_subplot(gs[0, 2]), ev.lags_ms, ev.acg_b, COLOR_B, f"ACG B ({ev.b})",
          ev.refractory_ms)
    if show_wf:
        ax = fig.add_subplot(gs[0, 3])
        n_s, n_c = ev.waveform_a.shape
        scale = max(np.abs(ev.waveform_a).max(), np.abs(ev.waveform_b).max(), 1e-12)
        x = np.arange(n_s)
        for i in range(n_c):
            off = (i - (n_c - 1) / 2) * 1.6 * n_s
            ax.plot(x + off, ev.waveform_a[:, i] / scale, color=COLOR_A, lw=1)
            ax.plot(x + off, ev.waveform_b[:, i] / scale, color=COLOR_B, lw=1, alpha=0.8)
        ax.set_title("mean waveforms (best channels)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(gs[1, :])
    ax.plot(ev.times_a, ev.amps_a, ".", ms=2.5, color=COLOR_A, alpha=0.6, mew=0,
            label=f"A {ev.a}")
    ax.plot(ev.times_b, ev.amps_b, ".", ms=2.5, color=COLOR_B, alpha=0.6, mew=0,
            label=f"B {ev.b}")
    ax.set_xlim(0, max(ev.duration_s, 1e-3))
    ax.set_xlabel("time (s)", fontsize=7)
    ax.set_ylabel("amplitude", fontsize=7)
    ax.set_title("amplitude over time", fontsize=9)
    ax.tick_params(labelsize=6)
    _few_ticks(ax, 10, 4)
    ax.legend(loc="upper right", fontsize=7, markerscale=4, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) read from a PNG header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def image_hash(png: bytes) -> str:
    """Short content hash of an image."""
    return hashlib.sha256(png).hexdigest()[:16]
