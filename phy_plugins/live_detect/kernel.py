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

#: rows scored ahead of the scan at a time (the score ring holds them plus the lookback)
BLOCK = 64


@njit(cache=True, nogil=True, inline="always")
def _score_row(row, k, lo, hi, off, inv, mode, zr):
    """Scores of one row into ``zr``; return whether the row may hold a sample beyond threshold.

    The raw test ``x <= lo or x >= hi`` (no conversion, vectorised) is a slightly widened
    superset of ``score >= 1``; scores are computed only for rows that pass it, so a row
    reported False has every score < 1: it can neither hold nor beat a peak.
    """
    lo_k = lo[k]
    hi_k = hi[k]
    n_ch = row.shape[0]
    h = False
    for c in range(n_ch):
        v = row[c]
        h |= (v <= lo_k[c]) | (v >= hi_k[c])
    if h:
        o = off[k]
        iv = inv[k]
        if mode == 0:
            for c in range(n_ch):
                zr[c] = (o[c] - np.float32(row[c])) * iv[c]
        elif mode == 1:
            for c in range(n_ch):
                zr[c] = (np.float32(row[c]) - o[c]) * iv[c]
        else:
            for c in range(n_ch):
                zr[c] = abs(np.float32(row[c]) - o[c]) * iv[c]
    return h


@njit(cache=True, nogil=True, inline="always")
def _candidates(zr, zp, zq, use_p, use_q, out):
    """``out[c]``: score ``zr[c]`` >= 1 and not beaten by the previous row ``zp`` (>=) or the
    next row ``zq`` (>) of its channel, the rows being used only where ``use_p`` / ``use_q``.

    Vectorised (no branch per channel), so that the per-channel loop after it only branches on
    the few samples that are local maxima in time.
    """
    n = zr.shape[0]
    if use_p and use_q:
        for c in range(n):
            s = zr[c]
            out[c] = (s >= 1.0) & (not zp[c] >= s) & (not zq[c] > s)
    elif use_p:
        for c in range(n):
            s = zr[c]
            out[c] = (s >= 1.0) & (not zp[c] >= s)
    elif use_q:
        for c in range(n):
            s = zr[c]
            out[c] = (s >= 1.0) & (not zq[c] > s)
    else:
        for c in range(n):
            out[c] = zr[c] >= 1.0


@njit(cache=True, nogil=True)
def detect_rows(xa, xb, row0, row1, n_valid, row_set, lo, hi, off, inv, mode, sweep, max_back,
                nb_ptr, nb_idx, z, hit, cand, out_row, out_ch, out_cross):
    """Find the peaks with rows in [row0, row1); rows [0, n_valid) exist. Return their count.

    Scores live in the ring buffers ``z`` (rows, channels) and ``hit`` (rows), row ``r`` at
    ``r & (len - 1)`` (a power of two larger than ``sweep + max(sweep, max_back) + 1``),
    computed just ahead of the scan so a candidate's neighbourhood is still in cache.
    ``out_cross`` receives the first row of the beyond-threshold run ending at each peak (at
    most ``max_back`` rows back).
    """
    mask = z.shape[0] - 1
    words = cand.view(np.uint64)
    done = max(0, row0 - max(sweep, max_back))  # next row to score
    n = 0
    for b0 in range(row0, row1, BLOCK):
        b1 = min(b0 + BLOCK, row1)
        need = min(b1 + sweep, n_valid)
        _score_rows(xa, xb, done, need, row_set, lo, hi, off, inv, mode, z, hit)
        done = need
        for r in range(b0, b1):
            if not hit[r & mask]:
                continue
            r_lo = max(r - sweep, 0)
            r_hi = min(r + sweep + 1, n_valid)
            zr = z[r & mask]
            p = r - 1
            q = r + 1
            _candidates(zr, z[p & mask], z[q & mask], p >= r_lo and hit[p & mask], q < r_hi and hit[q & mask],
                        cand)
            for w in range(words.shape[0]):  # 8 channels at a time: most words are 0
                if words[w] == 0:
                    continue
                for c in range(8 * w, 8 * w + 8):
                    if cand[c]:
                        n = _check(z, hit, mask, r, c, zr[c], r_lo, r_hi, sweep, max_back, nb_ptr, nb_idx,
                                   out_row, out_ch, out_cross, n)
    return n


@njit(cache=True, nogil=True)
def _score_rows(xa, xb, r0, r1, row_set, lo, hi, off, inv, mode, z, hit):
    """Score rows [r0, r1) into the ring buffers."""
    mask = z.shape[0] - 1
    na = xa.shape[0]
    for r in range(r0, r1):  # two call sites so that each sees one contiguous array (vectorised)
        i = r & mask
        if r < na:
            hit[i] = _score_row(xa[r], row_set[r], lo, hi, off, inv, mode, z[i])
        else:
            hit[i] = _score_row(xb[r - na], row_set[r], lo, hi, off, inv, mode, z[i])


@njit(cache=True, nogil=True, inline="always")
def _check(z, hit, mask, r, c, s, r_lo, r_hi, sweep, max_back, nb_ptr, nb_idx, out_row, out_ch, out_cross, n):
    """Check candidate (r, c) of score ``s`` against its neighbourhood (its channel is one of its
    neighbours); if it is a peak, write it at ``n`` with its crossing row. Return the new count.

    Rows are visited nearest first and each row is checked on all neighbours at once (they are
    near ``c`` in memory), so a spike's edge or its best channel rejects after a few rows.
    """
    zr = z[r & mask]
    for j in range(nb_ptr[c], nb_ptr[c + 1]):  # same row: ties go to the lower channel
        c2 = nb_idx[j]
        if zr[c2] > s or (zr[c2] == s and c2 < c):
            return n
    for d in range(1, sweep + 1):
        a = r - d  # earlier rows win ties
        if a >= r_lo and hit[a & mask]:
            za = z[a & mask]
            for j in range(nb_ptr[c], nb_ptr[c + 1]):
                if za[nb_idx[j]] >= s:
                    return n
        b = r + d
        if b < r_hi and hit[b & mask]:
            zb = z[b & mask]
            for j in range(nb_ptr[c], nb_ptr[c + 1]):
                if zb[nb_idx[j]] > s:
                    return n
    cr = r
    stop = max(r - max_back, 0)
    while cr - 1 >= stop and hit[(cr - 1) & mask] and z[(cr - 1) & mask, c] >= 1.0:
        cr -= 1
    out_row[n] = r
    out_ch[n] = c
    out_cross[n] = cr
    return n + 1


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
        for j in range(width):
            r = min(max(first[i] + j, 0), last)
            out[i, j] = xa[r, c] if r < na else xb[r - na, c]
