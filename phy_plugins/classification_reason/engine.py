"""Vectorised evaluation of the bombcell rules over a whole metrics table (no Qt, no bombcell).

:func:`evaluate` returns an :class:`Evaluation`: per-rule fail flags, the derived label, the
main reason, all reasons with values, and each rule's value, threshold and distance from flipping.

Main-reason choice: among the failed rules of the block that decided the label (NOISE, then
NON-SOMA, then MUA), the one furthest past its threshold *relative to the threshold*,
``(value - threshold) / |threshold|`` for ``>`` rules and ``(threshold - value) / |threshold|``
for ``<`` rules (the divisor is 1 when the threshold is 0 or infinite). A NaN ``nPeaks`` counts
as infinitely far. The non-somatic AND group is one candidate whose distance is the smallest
of its four members (it flips back as soon as one member passes). Ties go to the earlier rule
in bombcell's order.

Speed (100k units in ~5.5 ms): one compiled pass (:mod:`.kernel`, numba) computes the fail flags,
each unit's failed candidates packed into one integer, the label code and the main reason; the
label and main-reason texts are then taken from small tables by integer code (``status`` only
on access). The all-reasons text formats each distinct 3-significant-digit value once
(:func:`_group_by_3g`), not every value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

import numpy as np

from .kernel import classify
from .rules import BLOCKS, MUA, NOISE, NON_SOMA, RULES, SWITCHES, Rule, as_bool, complete_params, rule_is_active

#: label codes, as in bombcell plus ``5`` for empty units
LABELS = np.array(["NOISE", "GOOD", "MUA", "NON-SOMA", "NON-SOMA MUA", ""], dtype=object)
SPLIT_LABELS = np.array(["NOISE", "GOOD", "MUA", "NON-SOMA GOOD", "NON-SOMA MUA", ""], dtype=object)
GOOD_TEXT = "GOOD: passed all thresholds"
EMPTY_TEXT = "EMPTY: no spikes (bombcell leaves it unclassified)"
NAN_PEAKS_TEXT = "nPeaks is NaN (waveform metrics not computed: <50 spikes or NaN template)"
#: reason class of units whose labels disagree / clusters bombcell never saw
MISMATCH, NOT_IN_RUN = "MISMATCH", "NOT IN BOMBCELL RUN"
#: per-unit status texts, by ``Evaluation.status_code``
STATUS = np.array(["ok", "mismatch", "undetermined"], dtype=object)

_SIGN = np.array([1.0 if r.op == ">" else -1.0 if r.op == "<" else 0.0 for r in RULES])
_GROUP_IDX = [i for i, r in enumerate(RULES) if r.group]
_GATE_COL = {j: next(k for k, g in enumerate(RULES) if g.metric == r.gate) for j, r in enumerate(RULES) if r.gate}


@dataclass(frozen=True)
class Candidate:
    """A possible main reason: one rule, or the whole non-somatic AND group."""

    block: str
    rules: tuple[int, ...]

    @cached_property
    def name(self) -> str:
        return " & ".join(RULES[i].name for i in self.rules)

    @property
    def key(self) -> str:
        return "nonSomaticAndGroup" if len(self.rules) > 1 else RULES[self.rules[0]].key


def _candidates() -> tuple[Candidate, ...]:
    out: list[Candidate] = []
    for i, rule in enumerate(RULES):
        if rule.group is None:
            out.append(Candidate(rule.block, (i,)))
        elif i == _GROUP_IDX[0]:
            out.append(Candidate(rule.block, tuple(_GROUP_IDX)))
    return tuple(out)


CANDIDATES = _candidates()
_CAND_BLOCK = np.array([BLOCKS.index(c.block) for c in CANDIDATES])
assert len(CANDIDATES) < 63, "each unit's failed candidates are packed into one int64"
_BLOCK_BITS = [sum(1 << k for k in range(len(CANDIDATES)) if _CAND_BLOCK[k] == b) for b in range(len(BLOCKS))]
# per rule, for the kernel: comparison, candidate, block, AND-group membership, NaN gate
_OP = np.array([{"isnan": 0, ">": 1, "<": 2}[r.op] for r in RULES], dtype=np.int8)
_CAND_OF_RULE = np.array([next(k for k, c in enumerate(CANDIDATES) if j in c.rules) for j in range(len(RULES))])
_RULE_BLOCK = np.array([BLOCKS.index(r.block) for r in RULES])
_IN_GROUP = np.array([r.group is not None for r in RULES])
_GATE = np.array([_GATE_COL.get(j, -1) for j in range(len(RULES))])
_NAN_PEAKS = next(j for j, r in enumerate(RULES) if r.op == "isnan")
_NSPIKES = next(j for j, r in enumerate(RULES) if r.metric == "nSpikes")
#: candidate bits of the noise, mua and non-soma blocks
_FLAG_MASKS = np.array([_BLOCK_BITS[BLOCKS.index(b)] for b in (NOISE, MUA, NON_SOMA)], dtype=np.int64)
assert _GROUP_IDX == list(range(_GROUP_IDX[0], _GROUP_IDX[-1] + 1)), "the kernel needs AND members in a row"
assert list(_RULE_BLOCK) == sorted(_RULE_BLOCK), "the kernel needs the rules in label precedence"


#: per candidate, its token in the failed-rule list
_TOKENS = [f"{c.block}: {NAN_PEAKS_TEXT if RULES[c.rules[0]].op == 'isnan' else c.name}" for c in CANDIDATES]


def _unique_inverse(codes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(codes, return_inverse=True)`` for integer codes in ``[0, size)``.

    A lookup table replaces the sort when the code range is small (at most 2**24, and 64 per code).
    """
    if size > min(1 << 24, 64 * codes.size):
        uniq, inverse = np.unique(codes, return_inverse=True)
        return uniq, inverse.reshape(-1)
    seen = np.zeros(size, dtype=bool)
    seen[codes] = True
    uniq = np.flatnonzero(seen)
    slot = np.empty(size, dtype=np.intp)  # only the codes present are written and read
    slot[uniq] = np.arange(uniq.size)
    return uniq, slot.take(codes)


def _group_by_3g(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group values that print alike with ``.3g``, so each text is formatted once.

    Returns the group of each value, each group's text (``f"{value:.3g}"``) and the values left
    to format one by one (zero, non-finite, beyond 1e±300, or near a 3-digit rounding tie).
    A value is keyed by sign, exponent ``X`` and 3 significant digits ``d`` (100..999).
    """
    with np.errstate(all="ignore"):
        a = np.abs(v)
        ok = (a > 1e-300) & (a < 1e300)
        a[~ok] = 1.0
        x = np.floor(np.log10(a))
        m = a / 10.0 ** (x - 2)  # the 3 leading digits, with the rest as a fraction
        d = np.rint(m)
        ok &= (np.abs(m - np.floor(m) - 0.5) > 1e-6) & (d >= 100) & (d <= 1000)
        up = d == 1000  # rounds up to the next power of ten
        d[up] = 100
        x[up] += 1
    key = ((x + 400) * 1000 + d) * 2 + (v < 0)  # exponents within -300..300: keys >= 2e5
    key = np.where(ok, key, 0).astype(np.int64)
    lo = int(key[ok].min()) if ok.any() else 0
    key = np.where(ok, key - lo + 1, 0)
    uniq, group = _unique_inverse(key, int(key.max()) + 1)
    uniq = np.where(uniq == 0, _KEY_OF_ONE, uniq + lo - 1)  # group 0: values formatted alone
    q = uniq >> 1
    return group, _texts_3g(q % 1000, q // 1000 - 400, (uniq & 1).astype(bool)), ~ok


_KEY_OF_ONE = (400 * 1000 + 100) * 2


@cache
def _digit_tables() -> tuple[np.ndarray, np.ndarray]:
    """``.3g`` texts of ``d * 10**(x - 2)`` for d in 100..999: per x in -4..2 (fixed notation),
    and the mantissa ``d / 100`` for the exponent notation."""
    ds = range(100, 1000)
    fixed = [f"{d * 10.0 ** (x - 2) if x >= 2 else d / 10.0 ** (2 - x):.3g}" for x in range(-4, 3) for d in ds]
    return np.array(fixed, dtype=object), np.array([f"{d / 100:.3g}" for d in ds], dtype=object)


def _texts_3g(d: np.ndarray, x: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """``f"{v:.3g}"`` of ``v = ±d * 10**(x - 2)`` (3 significant digits ``d``, exponent ``x``)."""
    fixed, mantissa = _digit_tables()
    out = np.empty(d.size, dtype=object)
    fx = (x >= -4) & (x < 3)  # where .3g uses fixed notation
    out[fx] = fixed.take((x[fx] + 4) * 900 + d[fx] - 100)
    sci = np.flatnonzero(~fx)
    if sci.size:
        exps = np.array([f"e{e:+03d}" for e in x.take(sci).tolist()], dtype=object)
        out[sci] = mantissa.take(d.take(sci) - 100) + exps
    out[neg] = "-" + out[neg]
    return out


def _factor(t: np.ndarray) -> np.ndarray:
    """Per rule, the factor turning ``value - threshold`` into the relative distance past it."""
    return _SIGN / np.where(np.isfinite(t) & (t != 0), np.abs(t), 1.0)


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _fmt_vs(v: float, t: str) -> str:
    """``v`` to 3 significant digits, or in full when that would print the threshold itself."""
    text = f"{v:.3g}"
    return repr(v) if text == t else text


def _column(metrics: Any, name: str, n: int) -> np.ndarray | None:
    """A metric column as float64, or None when the table lacks it."""
    try:
        if name not in metrics:
            return None
        col = metrics[name]
    except (TypeError, KeyError):
        return None
    # a Series with a numpy dtype: to_numpy() is the same array as np.asarray, only quicker
    arr = col.to_numpy() if isinstance(getattr(col, "dtype", None), np.dtype) and hasattr(col, "to_numpy") \
        else np.asarray(col)
    if arr.dtype.kind not in "biuf":
        import pandas as pd

        arr = pd.to_numeric(pd.Series(arr), errors="coerce").to_numpy()
    arr = arr.astype(np.float64, copy=False).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"metric column {name!r} has {arr.shape[0]} rows, expected {n}")
    return arr


def _n_rows(metrics: Any) -> int:
    if hasattr(metrics, "shape") and len(getattr(metrics, "shape", ())) == 2:
        return int(metrics.shape[0])
    for name in ("nPeaks", "nSpikes"):
        if name in metrics:
            return len(metrics[name])
    first = next(iter(metrics.values()), None) if isinstance(metrics, Mapping) else None
    return 0 if first is None else len(first)


def _threshold(param: Mapping[str, Any], key: str | None) -> float | None:
    if key is None:
        return np.nan
    if key not in param:
        return None
    try:
        return float(param[key])
    except (TypeError, ValueError):
        return None


@dataclass
class Evaluation:
    """Result of :func:`evaluate`; arrays are per unit (rows) and per rule (columns)."""

    cluster_ids: np.ndarray
    param: dict[str, Any]
    columns: list[np.ndarray]  # per rule: the metric column it reads (NaN column if missing)
    thresholds: np.ndarray  # (n_rules,)
    skipped: list[str]  # per rule: '' if evaluated, else why not
    fails: np.ndarray  # (n, n_rules) bool
    empty: np.ndarray
    nonsoma_group: np.ndarray  # (n,) all four AND members fail
    code: np.ndarray  # (n,) label code, see LABELS
    label: np.ndarray  # (n,) derived label string (bombcell's vocabulary)
    main: np.ndarray  # (n,) index into CANDIDATES, -1 if none
    main_reason: np.ndarray  # (n,) str
    status_code: np.ndarray  # (n,) int8 index into STATUS
    saved_label: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    fail_bits: np.ndarray | None = None  # (n,) bit k set = candidate k failed

    def __len__(self) -> int:
        return len(self.cluster_ids)

    @property
    def status(self) -> np.ndarray:
        """(n,) 'ok' | 'mismatch' | 'undetermined' (saved label differs from the derived one)."""
        return STATUS.take(self.status_code.astype(np.intp))

    @cached_property
    def cand_fails_rm(self) -> np.ndarray:
        """(n_candidates, n) bool, candidate-major: single rules, and the AND group as one."""
        return np.stack(_candidate_rows(self.fails.T, self.nonsoma_group))

    @cached_property
    def row_of(self) -> dict[int, int]:
        """``{cluster_id: row}``."""
        return {int(c): i for i, c in enumerate(self.cluster_ids.tolist())}

    @property
    def evaluated(self) -> np.ndarray:
        return np.array([s == "" for s in self.skipped])

    @property
    def missing_rules(self) -> list[str]:
        """Rules that are switched on but could not be evaluated (missing column or param)."""
        return [RULES[j].name for j, s in enumerate(self.skipped) if s and not s.startswith("switched off")]

    @cached_property
    def values(self) -> np.ndarray:
        """(n, n_rules) the metric value each rule reads."""
        return np.stack(self.columns, axis=1) if self.columns else np.zeros((len(self), 0))

    @cached_property
    def excess(self) -> np.ndarray:
        """(n, n_rules) relative distance past the threshold: > 0 on the failing side.

        ``(value - threshold) / |threshold|`` for ``>`` rules, the opposite for ``<`` rules (divisor
        1 for a zero or infinite threshold); +inf/-inf for the NaN-``nPeaks`` rule.
        """
        with np.errstate(invalid="ignore", over="ignore"):
            x = (self.values - self.thresholds) * _factor(self.thresholds)
        for j, rule in enumerate(RULES):
            if rule.op == "isnan":
                x[:, j] = np.where(self.fails[:, j], np.inf, -np.inf)
        return x

    @property
    def candidate_fails(self) -> np.ndarray:
        """(n, n_candidates) bool: single rules, and the AND group as one candidate."""
        return self.cand_fails_rm.T

    @cached_property
    def reason_class(self) -> np.ndarray:
        """(n,) the class word before ':' in the main reason."""
        reasons = self.main_reason.tolist()
        word = {r: r.split(":", 1)[0] for r in set(reasons)}  # few distinct reasons: split each once
        return np.array([word[r] for r in reasons], dtype=object)

    @cached_property
    def main_key(self) -> np.ndarray:
        """(n,) short rule key of the main reason ('' when none): phy-filterable with ``==``."""
        keys = np.array([c.key for c in CANDIDATES] + [""], dtype=object)
        return keys[self.main]

    @cached_property
    def n_failed(self) -> np.ndarray:
        """(n,) number of failed candidates (AND group counts once), 0 for empty units."""
        return np.where(self.empty, 0, self.cand_fails_rm.sum(axis=0))

    def block_fails(self, block: str) -> np.ndarray:
        """(n,) 0/1: the unit fails at least one rule of ``block`` (AND group as a whole)."""
        hit = (self.fail_bits & _BLOCK_BITS[BLOCKS.index(block)]) != 0
        return (hit & ~self.empty).astype(np.int8)

    @cached_property
    def reason_list(self) -> np.ndarray:
        """(n,) names of every failed rule, ``' | '``-joined with block prefixes (no values).

        Vectorised: units are grouped by their pattern of failed rules and each distinct
        pattern is formatted once.
        """
        pattern = np.where(self.empty, 0, self.fail_bits)
        uniq, inverse = _unique_inverse(pattern, 1 << len(CANDIDATES))
        texts = np.empty(uniq.size, dtype=object)
        for u, pat in enumerate(uniq.tolist()):
            parts = []
            while pat:  # set bits, lowest (earliest rule) first
                low = pat & -pat
                parts.append(_TOKENS[low.bit_length() - 1])
                pat ^= low
            texts[u] = " | ".join(parts)
        return texts.take(inverse)

    @cached_property
    def all_reasons(self) -> np.ndarray:
        """(n,) every failed rule with its value, e.g. ``MUA: nSpikes<minNumSpikes (187<300)``.

        Listed in bombcell's rule order and joined with `` | ``; NON-SOMA units keep the MUA
        failures their label hides. Empty units have none.
        """
        out = np.empty(len(self), dtype=object)
        out.fill("")
        started = np.zeros(len(self), dtype=bool)  # the unit already has a token
        cf = self.cand_fails_rm & ~self.empty
        for k in range(len(CANDIDATES)):
            idx = np.flatnonzero(cf[k])
            if idx.size == 0:
                continue
            later = started.take(idx)
            tokens = self._tokens(k, idx, later)
            out[idx[~later]] = tokens[~later]
            rest = idx[later]
            out[rest] = out.take(rest) + tokens[later]
            started[idx] = True
        return out

    def _tokens(self, k: int, idx: np.ndarray, later: np.ndarray) -> np.ndarray:
        """Candidate ``k``'s all-reasons token for units ``idx``, with `` | `` first where ``later``."""
        cand = CANDIDATES[k]
        head = f"{cand.block}: "
        if RULES[cand.rules[0]].op == "isnan":
            return np.where(later, f" | {head}{NAN_PEAKS_TEXT}", f"{head}{NAN_PEAKS_TEXT}").astype(object)
        tokens = np.empty(idx.size, dtype=object)
        head += f"{cand.name} ("
        t_texts = [_fmt(self.thresholds[j]) for j in cand.rules]
        if len(cand.rules) == 1:  # format each distinct 3-digit value once
            j, t_text = cand.rules[0], t_texts[0]
            group, texts, alone = _group_by_3g(self.columns[j].take(idx))
            lut = head + texts + f"{RULES[j].op}{t_text})"
            tokens[:] = np.concatenate([lut, " | " + lut]).take(group + texts.size * later)
            # one by one: values left out, and values printing like their threshold (see _fmt_vs)
            todo = np.flatnonzero(alone | (texts == t_text).take(group))
            heads = np.where(later.take(todo), " | " + head, head).tolist()
            values = self.columns[j].take(idx.take(todo)).tolist()
            tokens[todo] = [f"{h}{_fmt_vs(v, t_text)}{RULES[j].op}{t_text})" for h, v in zip(heads, values)]
            return tokens
        cols = [self.columns[j] for j in cand.rules]  # the AND group: rare, one by one
        for p, i in enumerate(idx.tolist()):
            tokens[p] = (" | " if later[p] else "") + head + ", ".join(
                f"{_fmt_vs(float(c[i]), t)}{RULES[j].op}{t}"
                for j, c, t in zip(cand.rules, cols, t_texts, strict=True)) + ")"
        return tokens

    def reasons_of(self, i: int) -> str:
        """All reasons of one unit (row ``i``), formatted like :attr:`all_reasons`."""
        if self.empty[i]:
            return ""
        tokens = []
        for k, cand in enumerate(CANDIDATES):
            if not self.cand_fails_rm[k, i]:
                continue
            if RULES[cand.rules[0]].op == "isnan":
                tokens.append(f"{cand.block}: {NAN_PEAKS_TEXT}")
                continue
            parts = []
            for j in cand.rules:
                t = _fmt(self.thresholds[j])
                parts.append(f"{_fmt_vs(float(self.columns[j][i]), t)}{RULES[j].op}{t}")
            tokens.append(f"{cand.block}: {cand.name} (" + ", ".join(parts) + ")")
        return " | ".join(tokens)

    def rule_rows(self, cluster_id: int) -> list[dict[str, Any]]:
        """Every rule for one unit: value, threshold, state and distance from flipping."""
        i = self.row_of[int(cluster_id)]
        rows = []
        for j, rule in enumerate(RULES):
            v, t = float(self.columns[j][i]), float(self.thresholds[j])
            if self.skipped[j]:
                state, flip = "not evaluated", self.skipped[j]
            elif rule.op == "isnan":
                state = "FAIL" if self.fails[i, j] else "pass"
                flip = "waveform metrics missing" if self.fails[i, j] else "nPeaks computed"
            elif np.isnan(v):
                state, flip = "pass (NaN)", "a NaN metric never fails"
            elif rule.gate and np.isnan(self.columns[_GATE_COL[j]][i]):
                state, flip = "pass (no raw amplitude)", f"skipped: {rule.gate} is NaN"
            else:
                state = "FAIL" if self.fails[i, j] else "pass"
                if rule.group and self.fails[i, j] and not self.nonsoma_group[i]:
                    state = "member fails (AND group needs all 4)"
                if rule.uncertain_rpv_exempt and not self.fails[i, j] and v > t:
                    state, flip = "pass (RPV uncertain, kept)", "keepUncertainRPVUnits and RPV_status == 0"
                else:
                    flip = _flip_text(v, t, rule.op, bool(self.fails[i, j]))
            rows.append({
                "block": rule.block, "rule": rule.name, "metric": rule.metric, "op": rule.op,
                "value": v, "threshold": t, "state": state, "flip": flip,
                "group": rule.group or "", "relative_excess": _relative(v, t, rule.op, bool(self.fails[i, j])),
            })
        return rows


def _relative(v: float, t: float, op: str, failing: bool) -> float:
    """Relative distance past the threshold (> 0 failing side), as used for the main reason."""
    if op == "isnan":
        return np.inf if failing else -np.inf
    scale = abs(t) if np.isfinite(t) and t != 0 else 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        return float((v - t) / scale if op == ">" else (t - v) / scale)


def _flip_text(v: float, t: float, op: str, failing: bool) -> str:
    gap = abs(v - t)
    rel_txt = f" ({gap / abs(t):.0%} of threshold)" if np.isfinite(t) and t != 0 and np.isfinite(gap) else ""
    if failing:
        target = "≤" if op == ">" else "≥"
        return f"passes if {target} {_fmt(t)}: {_fmt(gap)} away{rel_txt}"
    target = ">" if op == ">" else "<"
    return f"fails if {target} {_fmt(t)}: {_fmt(gap)} away{rel_txt}"


def evaluate(
    metrics: Any,
    param: Mapping[str, Any] | None,
    cluster_ids: Sequence[int] | np.ndarray | None = None,
    saved_labels: Sequence[Any] | np.ndarray | None = None,
) -> Evaluation:
    """Evaluate all rules over ``metrics`` (DataFrame or dict of equal-length arrays).

    ``param`` is the run's saved parameter dict (completed like bombcell does; ``None`` when the
    parameter file is missing: threshold rules are then not evaluated); ``saved_labels`` is
    bombcell's own ``bc_unitType`` per row, used to flag disagreements.
    """
    n = _n_rows(metrics)
    no_param = param is None
    param, notes = ({}, []) if no_param else complete_params(dict(param))
    columns, cols, thresholds, skipped, rpv = _rule_inputs(metrics, param, n, no_param)
    not_evaluated = [j for j, s in enumerate(skipped) if s and not s.startswith("switched off")]
    missing = [RULES[j].name for j in not_evaluated]
    if missing:
        notes.append("rules not evaluated: " + "; ".join(f"{RULES[j].name}: {skipped[j]}" for j in not_evaluated))
    if cols.get("nSpikes") is None:
        notes.append("no nSpikes column: empty units cannot be recognised")
    split = as_bool(param.get("splitGoodAndMua_NonSomatic", False))
    names = SPLIT_LABELS if split else LABELS
    f = np.empty((len(RULES), n), dtype=bool)  # rule-major: each rule's row is contiguous
    bits, main, table_idx = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.intp), np.empty(n, dtype=np.intp)
    code, nonsoma_group, empty = np.empty(n, dtype=np.int8), np.empty(n, dtype=bool), np.empty(n, dtype=bool)
    active = np.array([not s for s in skipped])
    exempt = np.array([r.uncertain_rpv_exempt and rpv is not None for r in RULES])
    classify(tuple(_readonly(c) for c in columns), _readonly(np.zeros(0) if rpv is None else rpv),
             active, _OP, thresholds, _factor(thresholds), _GATE, exempt, _CAND_OF_RULE, _RULE_BLOCK, _IN_GROUP,
             bool(active[_GROUP_IDX].all()), _CAND_OF_RULE[_GROUP_IDX[0]], _NAN_PEAKS, _NSPIKES,
             _FLAG_MASKS, split, len(CANDIDATES), f, bits, code, main, table_idx, nonsoma_group, empty)
    main_reason = _reason_table(split, len(missing)).take(table_idx)

    ids = np.arange(n, dtype=np.int64) if cluster_ids is None else np.asarray(cluster_ids)
    if ids.dtype != np.int64 or (ids.flags.writeable and cluster_ids is not None):
        ids = ids.astype(np.int64)  # the caller's array is shared only when read-only int64
    ev = Evaluation(ids, param, columns, thresholds, skipped, f.T, empty, nonsoma_group, code,
                    names.take(code.astype(np.intp)), main, main_reason, np.zeros(n, dtype=np.int8),
                    None, notes, bits)
    if saved_labels is not None:
        _flag_disagreements(ev, saved_labels, missing)
    return ev


def _rule_inputs(metrics: Any, param: dict[str, Any], n: int, no_param: bool):
    """Per-rule metric columns (a shared NaN column where missing), the columns by name,
    thresholds, why-not-evaluated texts, and the ``RPV_status`` column when uncertain RPV
    units are kept (else None)."""
    nan_col = None  # shared stand-in for missing columns, made on first need
    columns: list[np.ndarray] = []  # each rule's metric column (shared, not copied)
    thresholds = np.full(len(RULES), np.nan)
    skipped = [""] * len(RULES)
    cols: dict[str, np.ndarray | None] = {}
    for j, rule in enumerate(RULES):
        for name in (rule.metric, rule.gate):
            if name and name not in cols:
                cols[name] = _column(metrics, name, n)
        col, thr = cols[rule.metric], _threshold(param, rule.param)
        if no_param and rule.param:
            skipped[j] = "no parameter file"
        elif not rule_is_active(rule, param):
            skipped[j] = "switched off (" + ", ".join(f"{k}={as_bool(param.get(k))}" for k, _ in rule.switches) + ")"
        elif col is None:
            skipped[j] = f"metric column {rule.metric!r} missing"
        elif thr is None:
            skipped[j] = f"parameter {rule.param!r} missing"
        elif rule.gate and cols[rule.gate] is None:
            skipped[j] = f"metric column {rule.gate!r} missing"
        if col is None and nan_col is None:
            nan_col = np.full(n, np.nan)
        columns.append(nan_col if col is None else col)
        if thr is not None:
            thresholds[j] = thr
    exempt = any(r.uncertain_rpv_exempt and not skipped[j] for j, r in enumerate(RULES))
    rpv = _column(metrics, "RPV_status", n) if exempt and as_bool(param.get("keepUncertainRPVUnits")) else None
    return columns, cols, thresholds, skipped, rpv


def _readonly(a: np.ndarray) -> np.ndarray:
    """``a`` as a read-only C-contiguous array (view or copy): one array type for the kernel."""
    if a.flags.writeable or not a.flags.c_contiguous:
        a = np.ascontiguousarray(a).view()
        a.flags.writeable = False
    return a


def _candidate_rows(f: np.ndarray, nonsoma_group: np.ndarray) -> list[np.ndarray]:
    """Per candidate, its (n,) fail flags: a rule's row of ``f``, or the AND group's flags."""
    return [f[c.rules[0]] if len(c.rules) == 1 else nonsoma_group for c in CANDIDATES]


@cache
def _reason_table(split: bool, n_missing: int) -> np.ndarray:
    """Main-reason text per (label code, 1 + candidate), raveled and read-only; column 0 is 'no
    failure' (``n_missing``: rules not evaluated)."""
    names = SPLIT_LABELS if split else LABELS
    n_cand = len(CANDIDATES)
    table = np.empty((len(names), n_cand + 1), dtype=object)
    good_text = GOOD_TEXT
    if n_missing:
        good_text = f"GOOD: passed all evaluated thresholds ({n_missing} not evaluated)"
    for c, lab in enumerate(names):
        for k, cand in enumerate(CANDIDATES):
            text = NAN_PEAKS_TEXT if RULES[cand.rules[0]].op == "isnan" else cand.name
            table[c, k + 1] = f"{lab}: {text}"
        table[c, 0] = good_text.replace("GOOD", lab, 1) if lab else EMPTY_TEXT
    table = table.ravel()
    table.flags.writeable = False
    return table


def _flag_disagreements(ev: Evaluation, saved_labels, missing: list[str]) -> None:
    """Where bombcell's saved label differs, say so in the reason instead of explaining it."""
    from pandas.api.types import infer_dtype

    saved = np.asarray(saved_labels, dtype=object)
    if infer_dtype(saved, skipna=False) == "string":  # all str already (the usual case)
        saved = saved.copy()
    else:
        saved = np.array(["" if s is None or (isinstance(s, float) and np.isnan(s)) else str(s)
                          for s in saved.tolist()], dtype=object)
    ev.saved_label = saved
    bad = np.flatnonzero(saved != ev.label)
    for i in bad.tolist():
        if missing:
            ev.status_code[i] = 2  # undetermined
            ev.main_reason[i] = (f"{saved[i] or 'EMPTY'}: reason not determined, rules not evaluated "
                                 f"({', '.join(missing)})")
        else:
            ev.status_code[i] = 1  # mismatch
            ev.main_reason[i] = (f"{MISMATCH}: bombcell saved {saved[i]!r} but its rules give "
                                 f"{ev.label[i]!r} (parameter or bombcell version drift)")
    if bad.size:
        ev.notes.append(f"{bad.size} unit(s) whose recomputed label differs from bombcell's saved label")


def switch_state(param: Mapping[str, Any]) -> dict[str, bool]:
    """The effective rule switches of a (completed) param."""
    param, _ = complete_params(dict(param))
    return {k: as_bool(param.get(k, False)) for k in SWITCHES}


__all__ = ["CANDIDATES", "Evaluation", "Rule", "evaluate", "switch_state", "MUA", "NOISE", "NON_SOMA"]
