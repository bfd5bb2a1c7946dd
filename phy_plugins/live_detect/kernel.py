"""Numba kernels of the detector: normalised scores, locally exclusive peaks, refractory.

The signal comes as two (rows, channels) arrays of one dtype, ``xa`` (history kept from
earlier chunks) followed by ``xb`` (the new chunk), so the chunk is never copied; "row" is a
row of their virtual concatenation. Row ``r`` uses threshold set ``row_set[r]``. The score of a
sample is ``(off - x) * inv`` (mode 0, negative peaks), ``(x - off) * inv`` (mode 1) or
``|x - off| * inv`` (mode 2), with ``inv = 1 / threshold`` (0 on dead channels): a sample is
beyond threshold when its score is >= 1. A peak is a sample beyond threshold that no sample
within +-``sweep`` rows on itself or a neighbour channel beats (higher score; ties go to the
earlier row, then to the lower channel), so the order is strict and each spike is kept once.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: rows scored ahead of the scan per call of :func:`_score_rows`
BLOCK = 64
#: channels per segment: the candidate pass only visits segments where the raw test fired
SEG = 64
#: ``_BIT_INDEX[(1 << k) % 67] == k`` for k < 64 (the powers of two differ modulo 67)
_BIT_INDEX = np.zeros(67, dtype=np.int64)
for _k in range(64):
    _BIT_INDEX[(1 << _k) % 67] = _k


# Numba increments and decrements (atomically) the reference count of every array passed to a
# function call or taken as a view (``a[i]``) inside a loop, which costs more than the arithmetic
# here: the hot loops therefore index 2-D arrays as ``a[i, j]`` and call a function only once per
# block of rows.
@njit(cache=True, nogil=True)
def _score_rows(x, x0, r0, r1, row_set, lo, hi, off, inv, mode, z, hit, live):
    """Score rows [r0, r1) (row ``r`` is ``x[r - x0]``) into the ring buffers ``z``, ``hit`` and
    ``live`` (per segment of :data:`SEG` channels).

    The raw test ``x <= lo or x >= hi`` (no conversion, vectorised) is a slightly widened
    superset of ``score >= 1``; scores are computed only for rows that pass it, so a row with
    ``hit`` False has every score < 1: it can neither hold nor beat a peak. Likewise a segment
    with ``live`` False has every score < 1: in a hit row its scores are written as 0 (also < 1,
    so no comparison with a score >= 1 changes) instead of computed. Full segments are tested
    with a fixed trip count (a variable one stops the loop from vectorising), the last partial
    one separately.
    """
    mask = z.shape[0] - 1
    n_ch = x.shape[1]
    n_full = n_ch // SEG
    for r in range(r0, r1):
        k = row_set[r]
        xr = r - x0
        i = r & mask
        h = False
        if mode == 0:
            for g in range(n_full):
                a = False
                for c in range(g * SEG, g * SEG + SEG):
                    a |= x[xr, c] <= lo[k, c]
                live[i, g] = a
                h |= a
        elif mode == 1:
            for g in range(n_full):
                a = False
                for c in range(g * SEG, g * SEG + SEG):
                    a |= x[xr, c] >= hi[k, c]
                live[i, g] = a
                h |= a
        else:
            for g in range(n_full):
                a = False
                for c in range(g * SEG, g * SEG + SEG):
                    v = x[xr, c]
                    a |= (v <= lo[k, c]) | (v >= hi[k, c])
                live[i, g] = a
                h |= a
        if n_full < live.shape[1]:  # the last, partial segment
            a = False
            for c in range(n_full * SEG, n_ch):
                v = x[xr, c]
                a |= ((mode != 1) & (v <= lo[k, c])) | ((mode != 0) & (v >= hi[k, c]))
            live[i, n_full] = a
            h |= a
        hit[i] = h
        if not h:
            continue
        for g in range(n_full):  # scores of live segments; 0 (< 1, like theirs) elsewhere
            if not live[i, g]:
                for c in range(g * SEG, g * SEG + SEG):
                    z[i, c] = 0.0
            elif mode == 0:
                for c in range(g * SEG, g * SEG + SEG):
                    z[i, c] = (off[k, c] - np.float32(x[xr, c])) * inv[k, c]
            elif mode == 1:
                for c in range(g * SEG, g * SEG + SEG):
                    z[i, c] = (np.float32(x[xr, c]) - off[k, c]) * inv[k, c]
            else:
                for c in range(g * SEG, g * SEG + SEG):
                    z[i, c] = abs(np.float32(x[xr, c]) - off[k, c]) * inv[k, c]
        if n_full < live.shape[1]:  # the last, partial segment
            live_last = live[i, n_full]
            for c in range(n_full * SEG, n_ch):
                v = np.float32(x[xr, c]) - off[k, c]
                v = -v if mode == 0 else v if mode == 1 else abs(v)
                z[i, c] = v * inv[k, c] if live_last else 0.0


@njit(cache=True, nogil=True)
def detect_rows(xa, xb, row0, row1, n_valid, row_set, lo, hi, off, inv, mode, sweep, max_back,
                nb_ptr, nb_idx, z, hit, live, out_row, out_ch, out_cross, out_amp, wave):
    """Find the peaks with rows in [row0, row1); rows [0, n_valid) exist. Return their count
    ``n`` and ``g``: peaks ``[0, g)`` have their waveform (``max_back`` rows before the peak,
    ``wave.shape[1]`` in all, clipped at row 0) in ``wave``, copied while its rows are still in
    cache; the others (window not complete yet, or ``wave`` full) are left to :func:`gather`.

    Scores live in the ring buffers ``z`` (rows, channels rounded up to a multiple of
    :data:`SEG`; the padding stays 0), ``hit`` (rows) and ``live`` (rows, segments), row ``r`` at
    ``r & (len - 1)`` (a power of two larger than ``BLOCK + sweep + max(sweep, max_back) + 1``),
    computed a block ahead of the scan so a candidate's neighbourhood is still in cache.
    ``out_cross`` receives the first row of the beyond-threshold run ending at each peak (at
    most ``max_back`` rows back), ``out_amp`` the signal value at the peak.

    A candidate is a sample with score >= 1 not beaten on its channel at +-1 row, found for a
    whole segment at once as one bit per channel (vectorised; only the row's ``live``
    segments), then visited bit by bit (no branch per channel); only candidates are
    then checked, nearest rows first and each row on all neighbours (its own channel is one of
    them), so a spike's edge or its best channel rejects after a few rows.
    """
    mask = z.shape[0] - 1
    n_seg = z.shape[1] // SEG  # a plain integer bound: range(live.shape[1]) ran about 20 % slower
    na = xa.shape[0]
    done = max(0, row0 - max(sweep, max_back))  # next row to score
    n = 0
    g = 0
    for b0 in range(row0, row1, BLOCK):
        b1 = min(b0 + BLOCK, row1)
        need = min(b1 + sweep, n_valid)
        if done < min(need, na):
            _score_rows(xa, 0, done, min(need, na), row_set, lo, hi, off, inv, mode, z, hit, live)
            done = min(need, na)
        if done < need:
            _score_rows(xb, na, done, need, row_set, lo, hi, off, inv, mode, z, hit, live)
            done = need
        g = _gather_ready(xa, xb, out_row, out_ch, g, n, done, max_back, wave)
        for r in range(b0, b1):
            i = r & mask
            if not hit[i]:
                continue
            r_lo = max(r - sweep, 0)
            r_hi = min(r + sweep + 1, n_valid)
            ip = (r - 1) & mask
            iq = (r + 1) & mask
            use_p = r - 1 >= r_lo and hit[ip]
            use_q = r + 1 < r_hi and hit[iq]
            for seg in range(n_seg):
                if not live[i, seg]:  # every score < 1 in these channels
                    continue
                c0 = seg * SEG
                # candidates as one bit per channel, vectorised: no branch per channel
                bits = np.uint64(0)
                if use_p and use_q:
                    for c in range(c0, c0 + SEG):
                        s = z[i, c]
                        t = (s >= 1.0) & (not z[ip, c] >= s) & (not z[iq, c] > s)
                        bits |= np.uint64(t) << np.uint64(c - c0)
                elif use_p:
                    for c in range(c0, c0 + SEG):
                        s = z[i, c]
                        t = (s >= 1.0) & (not z[ip, c] >= s)
                        bits |= np.uint64(t) << np.uint64(c - c0)
                elif use_q:
                    for c in range(c0, c0 + SEG):
                        s = z[i, c]
                        t = (s >= 1.0) & (not z[iq, c] > s)
                        bits |= np.uint64(t) << np.uint64(c - c0)
                else:
                    for c in range(c0, c0 + SEG):
                        bits |= np.uint64(z[i, c] >= 1.0) << np.uint64(c - c0)
                while bits != 0:  # each candidate, lowest channel first
                    low = bits & (~bits + np.uint64(1))
                    bits ^= low
                    c = c0 + _BIT_INDEX[low % np.uint64(67)]
                    s = z[i, c]
                    j0 = nb_ptr[c]
                    j1 = nb_ptr[c + 1]
                    beaten = False
                    for j in range(j0, j1):  # same row, no branch: ties go to the lower channel
                        c2 = nb_idx[j]
                        s2 = z[i, c2]
                        beaten |= (s2 > s) | ((s2 == s) & (c2 < c))
                    ok = not beaten
                    d = 1
                    while ok and d <= sweep:
                        a = r - d  # earlier rows win ties
                        ia = a & mask
                        if a >= r_lo and hit[ia]:
                            for j in range(j0, j1):
                                if z[ia, nb_idx[j]] >= s:
                                    ok = False
                                    break
                        b = r + d
                        ib = b & mask
                        if ok and b < r_hi and hit[ib]:
                            for j in range(j0, j1):
                                if z[ib, nb_idx[j]] > s:
                                    ok = False
                                    break
                        d += 1
                    if not ok:
                        continue
                    cr = r
                    stop = max(r - max_back, 0)
                    while cr - 1 >= stop and hit[(cr - 1) & mask] and z[(cr - 1) & mask, c] >= 1.0:
                        cr -= 1
                    out_row[n] = r
                    out_ch[n] = c
                    out_cross[n] = cr
                    out_amp[n] = xa[r, c] if r < na else xb[r - na, c]
                    n += 1
    g = _gather_ready(xa, xb, out_row, out_ch, g, n, done, max_back, wave)
    return n, g


@njit(cache=True, nogil=True)
def _gather_ready(xa, xb, rows, chs, g, n, done, n_pre, wave):
    """Copy the waveforms of peaks ``g, g + 1, ...`` whose window ends before row ``done``
    (rows before 0 clipped to 0) into ``wave``; return the next peak to gather."""
    na = xa.shape[0]
    width = wave.shape[1]
    while g < n and g < wave.shape[0] and rows[g] - n_pre + width <= done:
        f = rows[g] - n_pre
        c = chs[g]
        for j in range(width):
            r = max(f + j, 0)
            wave[g, j] = xa[r, c] if r < na else xb[r - na, c]
        g += 1
    return g


@njit(cache=True, nogil=True)
def apply_refractory(abs_t, ch, last, refractory, keep, interval):
    """Keep events more than ``refractory`` samples after the last kept one on their channel.

    ``last`` (per channel, absolute sample, -1 for none) is updated in place; ``interval``
    receives the samples since the previous kept event on that channel (-1 for the first).
    """
    for i in range(abs_t.shape[0]):
        c = ch[i]
        prev = last[c]
        if prev >= 0 and abs_t[i] - prev <= refractory:
            keep[i] = False
            continue
        keep[i] = True
        interval[i] = abs_t[i] - prev if prev >= 0 else -1
        last[c] = abs_t[i]


@njit(cache=True, nogil=True)
def gather(xa, xb, first, ch, out):
    """``out[i] = x[first[i] : first[i] + width, ch[i]]`` from the virtual rows, edge-clipped."""
    na = xa.shape[0]
    last = na + xb.shape[0] - 1
    width = out.shape[1]
    for i in range(first.shape[0]):
        c = ch[i]
        f = first[i]
        if f >= na and f + width - 1 <= last:  # inside the chunk (the usual case)
            f -= na
            for j in range(width):
                out[i, j] = xb[f + j, c]
        elif f >= 0 and f + width <= na:  # inside the history
            for j in range(width):
                out[i, j] = xa[f + j, c]
        else:
            for j in range(width):
                r = min(max(f + j, 0), last)
                out[i, j] = xa[r, c] if r < na else xb[r - na, c]


@njit(cache=True, nogil=True)
def compact_rows(a, keep):
    """Move rows ``keep`` (increasing) of ``a`` to its first rows, in place."""
    for j in range(keep.shape[0]):
        k = keep[j]
        if k != j:
            for t in range(a.shape[1]):
                a[j, t] = a[k, t]
