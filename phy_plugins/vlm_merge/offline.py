"""Offline judge: decides from the same evidence without any API.

Combines three log-odds terms (positive = same neuron):
- refractory: a Poisson likelihood ratio for the CCG count inside the refractory window,
  "same neuron" (expected count scaled by the units' own ACG violation ratio, at least 10 %)
  versus "independent neurons" (the count expected from the CCG shoulders);
- amplitudes: a veto when the amplitude distributions do not overlap where both units fire;
- template similarity: a mild prior around 0.8.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .evidence import PairEvidence

OFFLINE_VERSION = "offline-1"
Q_FLOOR = 0.1  # violations tolerated under "same neuron", as a fraction of the independent rate
LLR_CLIP = 6.0
MERGE_P, NO_MERGE_P = 0.8, 0.2


@dataclass
class OfflineVerdict:
    """Decision, confidence, merge probability, reasoning and the numbers behind it."""

    decision: str
    confidence: float
    p_merge: float
    reasoning: str
    stats: dict


def _expected_inside(inside_shoulder: tuple[int, int], ev: PairEvidence, n1: int, n2: int,
                     same: bool) -> float:
    """Pairs expected in the refractory window if spikes were independent."""
    r = ev.refractory_ms / 1000
    lo, hi = ev.shoulder_ms[0] / 1000, ev.shoulder_ms[1] / 1000
    shoulder = inside_shoulder[1]
    if shoulder >= 20:
        return shoulder * r / (hi - lo)
    pairs = n1 * (n1 - 1) if same else n1 * n2
    return pairs * 2 * r / max(ev.duration_s, 1e-9)


def amplitude_overlap(ev: PairEvidence, n_windows: int = 10, min_spikes: int = 10) -> float | None:
    """Best overlap coefficient (0-1) of the two amplitude histograms within a time window
    where both units fire; None when they never fire in the same window."""
    if ev.duration_s <= 0 or len(ev.amps_a) == 0 or len(ev.amps_b) == 0:
        return None
    pooled = np.concatenate([ev.amps_a, ev.amps_b])
    lo, hi = np.percentile(pooled, [0.5, 99.5])
    if hi <= lo:
        return 1.0
    bins = np.linspace(lo, hi, 31)
    edges = np.linspace(0, ev.duration_s, n_windows + 1)
    best = None
    for t0, t1 in zip(edges[:-1], edges[1:], strict=True):
        xa = ev.amps_a[(ev.times_a >= t0) & (ev.times_a < t1)]
        xb = ev.amps_b[(ev.times_b >= t0) & (ev.times_b < t1)]
        if len(xa) < min_spikes or len(xb) < min_spikes:
            continue
        ha = np.histogram(np.clip(xa, lo, hi), bins)[0] / len(xa)
        hb = np.histogram(np.clip(xb, lo, hi), bins)[0] / len(xb)
        ovl = float(np.minimum(ha, hb).sum())
        best = ovl if best is None else max(best, ovl)
    return best


def judge(ev: PairEvidence) -> OfflineVerdict:
    """Offline decision for one pair."""
    c_in = ev.ccg_counts[0]
    e_ccg = _expected_inside(ev.ccg_counts, ev, ev.n_a, ev.n_b, same=False)
    e_a = _expected_inside(ev.acg_a_counts, ev, ev.n_a, ev.n_a, same=True)
    e_b = _expected_inside(ev.acg_b_counts, ev, ev.n_b, ev.n_b, same=True)
    q_acg = (ev.acg_a_counts[0] + ev.acg_b_counts[0]) / max(e_a + e_b, 1e-9)
    q_same = max(q_acg, Q_FLOOR)
    q_ccg = c_in / e_ccg if e_ccg > 0 else float("nan")
    reasons = []
    if e_ccg > 0:
        llr_ccg = c_in * math.log(min(q_same, 1.0)) + e_ccg * (1 - min(q_same, 1.0))
    else:
        llr_ccg = 0.0
    llr_ccg = float(np.clip(llr_ccg, -LLR_CLIP, LLR_CLIP))
    duplicate = e_ccg > 0 and c_in > 3 * e_ccg and c_in >= 10
    reasons.append(
        f"CCG has {c_in} pairs within +/-{ev.refractory_ms:g} ms vs {e_ccg:.1f} expected for "
        f"independent units (ratio {q_ccg:.2f}; ACGs {q_acg:.2f})")
    ovl = amplitude_overlap(ev)
    if ovl is None:
        llr_amp = 0.0
        reasons.append("units never fire in the same time window: amplitudes not compared")
    else:
        llr_amp = -4.0 if ovl < 0.05 else (-2.0 if ovl < 0.15 else 0.0)
        reasons.append(f"amplitude overlap {ovl:.2f}" + (" (disjoint)" if llr_amp < 0 else ""))
    sim = ev.similarity
    llr_sim = 0.0 if sim is None else float(np.clip(5 * (sim - 0.8), -2, 1))
    if sim is not None:
        reasons.append(f"template similarity {sim:.2f}")
    total = llr_ccg + llr_amp + llr_sim
    p = 1 / (1 + math.exp(-total))
    if duplicate:
        decision = "uncertain"
        reasons.insert(0, "sharp CCG peak at 0 ms: possible duplicate detections")
    elif p >= MERGE_P:
        decision = "merge"
    elif p <= NO_MERGE_P:
        decision = "no_merge"
    else:
        decision = "uncertain"
    stats = dict(ccg_inside=c_in, ccg_expected=round(e_ccg, 3), acg_ratio=round(q_acg, 4),
                 amp_overlap=None if ovl is None else round(ovl, 4), llr_ccg=round(llr_ccg, 3),
                 llr_amp=llr_amp, llr_sim=round(llr_sim, 3), duplicate=duplicate)
    return OfflineVerdict(decision, round(max(p, 1 - p), 4), round(p, 4),
                          "; ".join(reasons) + ".", stats)
