"""Score detected events against ground-truth spike trains (pure numpy; used by checks/benchmarks)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .matching import match_nearest


def match_events(t_a: np.ndarray, c_a: np.ndarray, t_b: np.ndarray, c_b: np.ndarray, positions: np.ndarray,
                 tol: int, radius_um: float) -> np.ndarray:
    """For each item of a, whether an unused item of b lies within +-``tol`` samples and
    ``radius_um`` (one-to-one, as :func:`~.matching.match_nearest`, items of a in their order)."""
    order = np.argsort(t_b, kind="stable")
    t_b, c_b = np.asarray(t_b, np.int64)[order], np.asarray(c_b, np.int64)[order]
    return match_nearest(t_a, c_a, t_b, c_b, positions, tol, radius_um, np.zeros(len(t_b), bool)) >= 0


def unit_amplitudes(traces: np.ndarray, trains: Mapping[object, np.ndarray], half_width: int = 30
                    ) -> dict[object, tuple[int, float]]:
    """Per unit: (best channel, trough of its mean waveform in MAD-sigma units of that channel)."""
    sigma = np.median(np.abs(np.asarray(traces[::10], np.float32)), axis=0) / 0.6745
    sigma = np.where(sigma > 0, sigma, np.inf)
    out = {}
    for u, st in trains.items():
        st = np.asarray(st, np.int64)
        st = st[(st > half_width) & (st < len(traces) - half_width)][:500]
        if st.size == 0:
            continue
        mean = np.asarray(traces[st[:, None] + np.arange(-half_width, half_width + 1)], np.float32).mean(0) / sigma
        ch = int(np.argmax(np.abs(mean).max(0)))
        out[u] = (ch, float(np.abs(mean[:, ch]).max()))
    return out


def score(traces: np.ndarray, trains: Mapping[object, np.ndarray], peak_index: np.ndarray, channel: np.ndarray,
          positions: np.ndarray, sample_rate: float, *, min_sigma: float = 5.0, tol_ms: float = 0.5,
          radius_um: float = 100.0) -> dict:
    """Recall of units >= ``min_sigma`` (pooled and per unit) and detected events per GT spike.

    A ground-truth spike is found when an event lies within +-``tol_ms`` and ``radius_um`` of
    its unit's best channel (each event counts once).
    """
    amps = unit_amplitudes(traces, trains)
    units = [u for u in trains if u in amps]
    t = [np.asarray(trains[u], np.int64) for u in units]
    c = [np.full(len(s), amps[u][0]) for u, s in zip(units, t, strict=True)]
    tol = int(round(tol_ms * 1e-3 * sample_rate))
    n_gt = int(sum(len(s) for s in t))
    hit = match_events(np.concatenate(t), np.concatenate(c), peak_index, channel, positions, tol, radius_um) \
        if n_gt else np.zeros(0, bool)
    per_unit, offs = {}, 0
    for u, s in zip(units, t, strict=True):
        per_unit[u] = (float(hit[offs:offs + len(s)].mean()) if len(s) else 0.0, amps[u][1], len(s))
        offs += len(s)
    big = [v for v in per_unit.values() if v[1] >= min_sigma and v[2]]
    n_big = sum(v[2] for v in big)
    return {
        "n_units": len(units), "n_big": len(big),
        "recall_big_pooled": sum(r * n for r, _, n in big) / n_big if n_big else float("nan"),
        "recall_big_min": min((r for r, _, _ in big), default=float("nan")),
        "recall_big_median": float(np.median([r for r, _, _ in big])) if big else float("nan"),
        "units_big_ge_095": sum(r >= 0.95 for r, _, _ in big),
        "n_gt_spikes": n_gt, "n_events": int(len(peak_index)),
        "events_per_gt_spike": len(peak_index) / n_gt if n_gt else float("nan"),
        "per_unit": per_unit,
    }
