"""Numba kernel of :func:`~.engine.evaluate`: fail flags, label code and main reason in one pass.

Units are taken in chunks of :data:`CHUNK` (their state stays in L1 cache); for each chunk the
rules are applied in bombcell's order. The rules come block by block in label precedence (NOISE,
NON-SOMA, MUA), so the block that decides a unit's label is its first block with a failure: each
unit keeps its failed candidate furthest past the threshold (strict ``>``, so ties go to the
earlier rule), and at each block boundary a unit that already has one is frozen. A failed
candidate's distance is >= 0 and never NaN, so a block's first failure is always taken.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: units per chunk
CHUNK = 512


@njit(cache=True, nogil=True)
def classify(cols, rpv, active, op, thr, factor, gate, exempt, cand, block, group, group_ok,
             group_cand, nan_peaks, nspikes_rule, flag_masks, split, n_cand,
             f, bits, code, main, table_idx, nonsoma, empty):
    """Fill the per-unit outputs ``f`` (rules, n), ``bits``, ``code``, ``main``, ``table_idx``,
    ``nonsoma`` and ``empty`` from the per-rule metric columns ``cols`` (a tuple of arrays).

    Per rule: ``active``, ``op`` (0 isnan, 1 ``>``, 2 ``<``), ``thr``, ``factor`` (sign /
    threshold scale), ``gate`` (rule whose column must not be NaN, -1 none), ``exempt`` (passes
    where ``rpv == 0``), candidate ``cand``, ``block`` and AND-``group`` membership.
    ``group_ok``: the AND group is evaluated; ``nan_peaks``: the isnan rule (distance +inf);
    ``flag_masks``: candidate bits of the NOISE, MUA and NON-SOMA blocks. The label code
    (see ``engine.LABELS``) follows bombcell's precedence: empty, NOISE, non-somatic (split
    into GOOD/MUA with ``split``), MUA, GOOD.
    """
    n = bits.size
    n_rules = len(cols)
    last_member = -1
    for j in range(n_rules):
        if group[j]:
            last_member = j
    best = np.empty(CHUNK)
    pick = np.empty(CHUNK, dtype=np.int64)
    g_fail = np.empty(CHUNK, dtype=np.bool_)
    g_x = np.empty(CHUNK)
    for c0 in range(0, n, CHUNK):
        c1 = min(c0 + CHUNK, n)
        m = c1 - c0
        # chunk views: loops indexed from 0 vectorise (no negative-index check)
        bits_c = bits[c0:c1]
        for i in range(m):
            bits_c[i] = 0
            best[i] = -np.inf
            pick[i] = -1
            g_fail[i] = group_ok
            g_x[i] = np.inf
        for j in range(n_rules):
            if j > 0 and block[j] != block[j - 1]:  # freeze units decided by an earlier block
                for i in range(m):
                    best[i] = np.inf if pick[i] >= 0 else best[i]
            f_j = f[j, c0:c1]
            if not active[j]:
                for i in range(m):
                    f_j[i] = False
                if group[j]:
                    for i in range(m):
                        g_fail[i] = False
            else:  # branch-free loops over the chunk; f_j holds the rule's fail flags
                col = cols[j][c0:c1]
                t, s = thr[j], factor[j]
                if op[j] == 0:
                    for i in range(m):
                        f_j[i] = np.isnan(col[i])
                elif op[j] == 1:
                    for i in range(m):
                        f_j[i] = col[i] > t
                else:
                    for i in range(m):
                        f_j[i] = col[i] < t
                if gate[j] >= 0:
                    g_col = cols[gate[j]][c0:c1]
                    for i in range(m):
                        f_j[i] &= not np.isnan(g_col[i])
                if exempt[j]:
                    rpv_c = rpv[c0:c1]
                    for i in range(m):
                        f_j[i] &= rpv_c[i] != 0
                if group[j]:
                    for i in range(m):
                        g_fail[i] &= f_j[i]
                        g_x[i] = min(g_x[i], (col[i] - t) * s)
                else:
                    k = cand[j]
                    bit = np.int64(1) << k
                    inf = j == nan_peaks
                    for i in range(m):
                        fi = f_j[i]
                        bits_c[i] |= bit if fi else 0
                        x = np.inf if inf else (col[i] - t) * s
                        better = fi & (x > best[i])
                        best[i] = x if better else best[i]
                        pick[i] = k if better else pick[i]
            if j == last_member:  # the AND group is one candidate, at its first member's place
                bit = np.int64(1) << group_cand
                for i in range(m):
                    gi = g_fail[i]
                    bits_c[i] |= bit if gi else 0
                    better = gi & (g_x[i] > best[i])
                    best[i] = g_x[i] if better else best[i]
                    pick[i] = group_cand if better else pick[i]
        ns = cols[nspikes_rule][c0:c1]
        code_c, main_c, idx_c = code[c0:c1], main[c0:c1], table_idx[c0:c1]
        nonsoma_c, empty_c = nonsoma[c0:c1], empty[c0:c1]
        for i in range(m):
            e = ns[i] == 0
            b = bits_c[i]
            c = 2 if (b & flag_masks[1]) != 0 else 1  # MUA or GOOD
            if (b & flag_masks[2]) != 0:  # non-somatic
                c = c + 2 if split else 3
            c = 5 if e else 0 if (b & flag_masks[0]) != 0 else c
            k = -1 if e else pick[i]
            code_c[i] = c
            main_c[i] = k
            idx_c[i] = c * (n_cand + 1) + k + 1
            nonsoma_c[i] = g_fail[i]
            empty_c[i] = e
