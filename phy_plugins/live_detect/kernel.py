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


@njit(cache=True, nogil=True)
def detect_rows(xa, xb, row0, row1, n_valid, row_set, lo, hi, off, inv, mode, sweep, max_back,
                nb_ptr, nb_idx, z, hit, out_row, out_ch, out_cross):
    """Find the peaks with rows in [row0, row1); rows [0, n_valid) exist. Return their count.

    Scores live in the ring buffers ``z`` (rows, channels) and ``hit`` (rows), row ``r`` at
    ``r & (len - 1)`` (a power of two larger than ``sweep + max(sweep, max_back) + 1``),
    computed just ahead of the scan so a candidate's neighbourhood is still in cache.
    ``out_cross`` receives the first row of the beyond-threshold run ending at each peak (at
    most ``max_back`` rows back).
    """
    mask = z.shape[0] - 1
    n_ch = z.shape[1]
    na = xa.shape[0]
    done = max(0, row0 - max(sweep, max_back))  # next row to score
    n = 0
    for r in range(row0, row1):
        need = min(r + sweep + 1, n_valid)
        while done < need:  # two call sites so that each sees one contiguous array (vectorised)
            i = done & mask
            if done < na:
                h = _score_row(xa[done], row_set[done], lo, hi, off, inv, mode, z[i])
            else:
                h = _score_row(xb[done - na], row_set[done], lo, hi, off, inv, mode, z[i])
            hit[i] = h
            done += 1
        if not hit[r & mask]:
            continue
        r_lo = max(r - sweep, 0)
        r_hi = need
        zr = z[r & mask]
        for c in range(n_ch):
            s = zr[c]
            if not s >= 1.0:
                continue
            ok = True
            # same channel, nearest rows first: a rising or falling edge fails at once
            for d in range(1, sweep + 1):
                a = r - d
                if a >= r_lo and hit[a & mask] and z[a & mask, c] >= s:
                    ok = False
                    break
                b = r + d
                if b < r_hi and hit[b & mask] and z[b & mask, c] > s:
                    ok = False
                    break
            # neighbour channels, nearest rows first: the spike's best channel rejects at once
            d = 0
            while ok and d <= sweep:
                a = r - d
                b = r + d
                use_a = a >= r_lo and hit[a & mask]
                use_b = d > 0 and b < r_hi and hit[b & mask]
                for j in range(nb_ptr[c], nb_ptr[c + 1]):
                    c2 = nb_idx[j]
                    if c2 == c:
                        continue
                    if use_a:
                        s2 = z[a & mask, c2]
                        if s2 > s or (s2 == s and (d > 0 or c2 < c)):
                            ok = False
                            break
                    if use_b and z[b & mask, c2] > s:
                        ok = False
                        break
                d += 1
            if ok:
                cr = r
                stop = max(r - max_back, 0)
                while cr - 1 >= stop and hit[(cr - 1) & mask] and z[(cr - 1) & mask, c] >= 1.0:
                    cr -= 1
                out_row[n] = r
                out_ch[n] = c
                out_cross[n] = cr
                n += 1
    return n


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
