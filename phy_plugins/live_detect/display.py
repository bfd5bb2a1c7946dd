"""Pure helpers that shape detector output for the dock view (no Qt here)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .events import AnalysisEvent


def parse_channels(text: str, n_channels: int) -> list[int]:
    """``"3, 5-7"`` -> ``[3, 5, 6, 7]``; empty text -> ``[]`` (automatic). Raises ValueError."""
    out: list[int] = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    bad = [c for c in out if not 0 <= c < n_channels]
    if bad:
        raise ValueError(f"channels {bad} out of range 0..{n_channels - 1}")
    return list(dict.fromkeys(out))


def overlay(waveforms: Sequence[np.ndarray], sample_rate: float, n_pre: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate waveforms into one NaN-separated (x in ms, y) polyline, peak at x = 0."""
    if not waveforms:
        return np.zeros(0), np.zeros(0)
    n = len(waveforms[0])
    t = np.r_[(np.arange(n) - n_pre) * 1e3 / sample_rate, np.nan]
    same = [w for w in waveforms if len(w) == n]
    y = np.concatenate([np.r_[np.asarray(w, float), np.nan] for w in same])
    return np.tile(t, len(same)), y


def markers(events: Iterable[AnalysisEvent], channels: Sequence[int], spacing: float,
            t0_s: float, t1_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Marker (x = time s, y = stacked amplitude, matched flag) for events on displayed channels."""
    row = {c: i for i, c in enumerate(channels)}
    pts = [(e.peak_time_s, e.amplitude - row[e.channel] * spacing, e.cluster >= 0)
           for e in events if e.channel in row and t0_s <= e.peak_time_s <= t1_s]
    if not pts:
        return np.zeros(0), np.zeros(0), np.zeros(0, bool)
    a = np.array(pts, dtype=float)
    return a[:, 0], a[:, 1], a[:, 2].astype(bool)


def trace_spacing(data: np.ndarray, levels: np.ndarray | None, channels: Sequence[int]) -> float:
    """Vertical distance between stacked channels: a bit more than twice the threshold."""
    if levels is not None and len(channels):
        lv = np.abs(levels[:, list(channels)])
        lv = lv[np.isfinite(lv)]
        if lv.size:
            return float(3.0 * lv.max())
    finite = data[np.isfinite(data)]
    return float(6.0 * finite.std()) if finite.size > 1 and finite.std() > 0 else 1.0


def recall_lines(recall: dict[int, tuple[int, int]], selected: Sequence[int] = (), top: int = 6) -> list[str]:
    """Readable per-cluster recall: selected clusters first, then the most active ones."""
    order = [c for c in selected if c in recall]
    order += [c for c, _ in sorted(recall.items(), key=lambda kv: -kv[1][1]) if c not in order]
    lines = []
    for c in order[:top]:
        found, total = recall[c]
        frac = found / total if total else 0.0
        lines.append(f"cluster {c}: {found}/{total} found ({frac:.0%})")
    return lines


def event_summary(e: AnalysisEvent) -> str:
    """One-line readout of the last event and its metrics."""
    p = e.properties
    who = f"cluster {e.cluster}" if e.cluster >= 0 else "no sorted spike"
    return (f"t={e.peak_time_s:.4f}s ch{e.channel} amp {e.amplitude:.1f} (thr {e.threshold:.1f}) {who} | "
            f"baseline {p.get('baseline', 0):.1f} energy {p.get('energy_density', 0):.1f} "
            f"min {p.get('min', 0):.1f} max {p.get('max', 0):.1f} f {p.get('peak_frequency_hz', 0):.0f} Hz")

