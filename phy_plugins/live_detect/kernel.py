"""Numba kernels of the detector: locally exclusive peak scan, refractory, crossing search.

The signal is given as two (rows, channels) arrays of one dtype, ``xa`` (history kept from
earlier chunks) followed by ``xb`` (the new chunk), so the chunk is never copied; "row" means
the row of their virtual concatenation. Row ``r`` uses threshold set ``row_set[r]``: for set
``k`` a sample is a candidate when ``x <= lo[k, c]`` or ``x >= hi[k, c]``, and its score is
``(x - off[k, c]) * inv[k, c]`` signed by the polarity (mode 0 neg, 1 pos, 2 both = absolute).
A candidate is an event when no sample within +-``sweep`` rows on itself or a neighbour channel
has a larger score (ties go to the earlier row, then to the lower channel).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _score(v, off, inv, mode):
    d = v - off
    if mode == 0:
        d = -d
    elif mode == 2:
        d = abs(d)
    return d * inv


@njit(cache=True, nogil=True, inline="always")
def _at(xa, xb, r, c):
    na = xa.shape[0]
    if r < na:
        return np.float64(xa[r, c])
    return np.float64(xb[r - na, c])


@njit(cache=True, nogil=True, inline="always")
def _beats(xa, xb, row_set, off, inv, mode, s, r, c, c2, r_lo, r_hi):
    """True if sample (r, c) with score s beats every sample of channel c2 in rows [r_lo, r_hi)."""
    if c2 == c:  # nearest rows first: a rising or falling edge fails at once
        for d in range(1, max(r - r_lo, r_hi - 1 - r) + 1):
            for r2 in (r - d, r + d):
                if r_lo <= r2 < r_hi:
                    k2 = row_set[r2]
                    s2 = _score(_at(xa, xb, r2, c), off[k2, c], inv[k2, c], mode)
                    if s2 > s or (s2 == s and r2 < r):
                        return False
        return True
    for r2 in range(r_lo, r_hi):
        k2 = row_set[r2]
        s2 = _score(_at(xa, xb, r2, c2), off[k2, c2], inv[k2, c2], mode)
        if s2 > s or (s2 == s and (r2 < r or (r2 == r and c2 < c))):
            return False
    return True


@njit(cache=True, nogil=True)
def scan_peaks(xa, xb, row0, row1, valid1, row_set, lo, hi, off, inv, mode, sweep,
               nb_ptr, nb_idx, out_row, out_ch):
    """Write the locally exclusive peaks with rows in [row0, row1) to ``out_*``; return count.

    Rows outside [0, valid1) do not exist (start or end of the stream).
    """
    n_ch = xa.shape[1]
    na = xa.shape[0]
    n = 0
    for r in range(row0, row1):
        row = xa[r] if r < na else xb[r - na]
        k = row_set[r]
        lo_k = lo[k]
        hi_k = hi[k]
        hit = False
        for c in range(n_ch):
            v = row[c]
            hit |= (v <= lo_k[c]) | (v >= hi_k[c])
        if not hit:
            continue
        for c in range(n_ch):
            v = row[c]
            if not (v <= lo_k[c] or v >= hi_k[c]):
                continue
            s = _score(np.float64(v), off[k, c], inv[k, c], mode)
            r_lo = max(r - sweep, 0)
            r_hi = min(r + sweep + 1, valid1)
            # same channel first (cheap, rejects most samples of a spike), then the neighbours
            ok = _beats(xa, xb, row_set, off, inv, mode, s, r, c, c, r_lo, r_hi)
            j = nb_ptr[c]
            while ok and j < nb_ptr[c + 1]:
                c2 = nb_idx[j]
                if c2 != c:
                    ok = _beats(xa, xb, row_set, off, inv, mode, s, r, c, c2, r_lo, r_hi)
                j += 1
            if ok:
                out_row[n] = r
                out_ch[n] = c
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
def find_crossings(xa, xb, rows, ch, row_set, lo, hi, max_back, out):
    """For each peak, the first row of the beyond-threshold run that ends at the peak."""
    for i in range(rows.shape[0]):
        r = rows[i]
        c = ch[i]
        stop = max(r - max_back, 0)
        while r - 1 >= stop:
            k = row_set[r - 1]
            v = _at(xa, xb, r - 1, c)
            if not (v <= lo[k, c] or v >= hi[k, c]):
                break
            r -= 1
        out[i] = r
