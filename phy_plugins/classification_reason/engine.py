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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .rules import BLOCKS, MUA, NOISE, NON_SOMA, RULES, SWITCHES, Rule, as_bool, complete_params, rule_is_active

#: label codes, as in bombcell plus ``5`` for empty units
LABELS = np.array(["NOISE", "GOOD", "MUA", "NON-SOMA", "NON-SOMA MUA", ""], dtype=object)
SPLIT_LABELS = np.array(["NOISE", "GOOD", "MUA", "NON-SOMA GOOD", "NON-SOMA MUA", ""], dtype=object)
GOOD_TEXT = "GOOD: passed all thresholds"
EMPTY_TEXT = "EMPTY: no spikes (bombcell leaves it unclassified)"
NAN_PEAKS_TEXT = "nPeaks is NaN (waveform metrics not computed: <50 spikes or NaN template)"
#: reason class of units whose labels disagree / clusters bombcell never saw
MISMATCH, NOT_IN_RUN = "MISMATCH", "NOT IN BOMBCELL RUN"

_OP_GT = np.array([r.op == ">" for r in RULES])
_OP_LT = np.array([r.op == "<" for r in RULES])
_OP_NAN = np.array([r.op == "isnan" for r in RULES])
_GROUP_IDX = [i for i, r in enumerate(RULES) if r.group]
_GATE_COL = {j: next(k for k, g in enumerate(RULES) if g.metric == r.gate) for j, r in enumerate(RULES) if r.gate}


@dataclass(frozen=True)
class Candidate:
    """A possible main reason: one rule, or the whole non-somatic AND group."""

    block: str
    rules: tuple[int, ...]

    @property
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
_GROUP_CAND = next(k for k, c in enumerate(CANDIDATES) if len(c.rules) > 1)
_SINGLE = np.array([c.rules[0] if len(c.rules) == 1 else -1 for c in CANDIDATES])


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _column(metrics: Any, name: str, n: int) -> np.ndarray | None:
    """A metric column as float64, or None when the table lacks it."""
    try:
        if name not in metrics:
            return None
        col = metrics[name]
    except (TypeError, KeyError):
        return None
    arr = np.asarray(col)
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
    values: np.ndarray  # (n, n_rules) metric value each rule reads
    thresholds: np.ndarray  # (n_rules,)
    skipped: list[str]  # per rule: '' if evaluated, else why not
    fails: np.ndarray  # (n, n_rules) bool
    excess: np.ndarray  # (n, n_rules) relative distance past the threshold (>0 failing side)
    empty: np.ndarray
    nonsoma_group: np.ndarray  # (n,) all four AND members fail
    code: np.ndarray  # (n,) label code, see LABELS
    label: np.ndarray  # (n,) derived label string (bombcell's vocabulary)
    main: np.ndarray  # (n,) index into CANDIDATES, -1 if none
    main_reason: np.ndarray  # (n,) str
    status: np.ndarray  # (n,) 'ok' | 'mismatch' | 'undetermined'
    saved_label: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cluster_ids)

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
    def candidate_fails(self) -> np.ndarray:
        """(n, n_candidates) bool: single rules, and the AND group as one candidate."""
        out = np.zeros((len(self), len(CANDIDATES)), dtype=bool)
        single = _SINGLE >= 0
        out[:, single] = self.fails[:, _SINGLE[single]]
        out[:, _GROUP_CAND] = self.nonsoma_group
        return out

    @cached_property
    def reason_class(self) -> np.ndarray:
        """(n,) the class word before ':' in the main reason."""
        return np.array([r.split(":", 1)[0] for r in self.main_reason.tolist()], dtype=object)

    @cached_property
    def main_key(self) -> np.ndarray:
        """(n,) short rule key of the main reason ('' when none): phy-filterable with ``==``."""
        keys = np.array([c.key for c in CANDIDATES] + [""], dtype=object)
        return keys[self.main]

    @cached_property
    def n_failed(self) -> np.ndarray:
        """(n,) number of failed candidates (AND group counts once), 0 for empty units."""
        return np.where(self.empty, 0, self.candidate_fails.sum(axis=1))

    def block_fails(self, block: str) -> np.ndarray:
        """(n,) 0/1: the unit fails at least one rule of ``block`` (AND group as a whole)."""
        mask = _CAND_BLOCK == BLOCKS.index(block)
        return (self.candidate_fails[:, mask].any(axis=1) & ~self.empty).astype(np.int8)

    @cached_property
    def all_reasons(self) -> np.ndarray:
        """(n,) every failed rule with its value, e.g. ``MUA: nSpikes<minNumSpikes (187<300)``.

        Listed in bombcell's rule order and joined with `` | ``; NON-SOMA units keep the MUA
        failures their label hides. Empty units have none.
        """
        out = np.full(len(self), "", dtype=object)
        cf = self.candidate_fails & ~self.empty[:, None]
        for k, cand in enumerate(CANDIDATES):
            idx = np.flatnonzero(cf[:, k])
            if idx.size == 0:
                continue
            rules = [RULES[j] for j in cand.rules]
            if rules[0].op == "isnan":
                tokens = np.full(idx.size, f"{cand.block}: {NAN_PEAKS_TEXT}", dtype=object)
            else:
                parts = []
                for j, rule in zip(cand.rules, rules, strict=True):
                    t = _fmt(self.thresholds[j])
                    parts.append([f"{_fmt(v)}{rule.op}{t}" for v in self.values[idx, j].tolist()])
                head = f"{cand.block}: {cand.name} ("
                tokens = np.array([head + ", ".join(p) + ")" for p in zip(*parts, strict=True)], dtype=object)
            cur = out[idx]
            out[idx] = np.where(cur == "", tokens, cur + " | " + tokens)
        return out

    def rule_rows(self, cluster_id: int) -> list[dict[str, Any]]:
        """Every rule for one unit: value, threshold, state and distance from flipping."""
        i = self.row_of[int(cluster_id)]
        rows = []
        for j, rule in enumerate(RULES):
            v, t = float(self.values[i, j]), float(self.thresholds[j])
            if self.skipped[j]:
                state, flip = "not evaluated", self.skipped[j]
            elif rule.op == "isnan":
                state = "FAIL" if self.fails[i, j] else "pass"
                flip = "waveform metrics missing" if self.fails[i, j] else "nPeaks computed"
            elif np.isnan(v):
                state, flip = "pass (NaN)", "a NaN metric never fails"
            elif rule.gate and np.isnan(self.values[i, _GATE_COL[j]]):
                state, flip = "pass (no raw amplitude)", f"skipped: {rule.gate} is NaN"
            else:
                state = "FAIL" if self.fails[i, j] else "pass"
                if rule.uncertain_rpv_exempt and not self.fails[i, j] and v > t:
                    state, flip = "pass (RPV uncertain, kept)", "keepUncertainRPVUnits and RPV_status == 0"
                else:
                    flip = _flip_text(v, t, rule.op, bool(self.fails[i, j]))
            rows.append({
                "block": rule.block, "rule": rule.name, "metric": rule.metric, "op": rule.op,
                "value": v, "threshold": t, "state": state, "flip": flip,
                "group": rule.group or "", "relative_excess": float(self.excess[i, j]),
            })
        return rows


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

    ``param`` is the run's saved parameter dict (completed like bombcell does); ``saved_labels``
    bombcell's own ``bc_unitType`` per row, used to flag disagreements.
    """
    n = _n_rows(metrics)
    param, notes = complete_params(dict(param) if param is not None else None)
    n_rules = len(RULES)
    values = np.full((n, n_rules), np.nan)
    thresholds = np.full(n_rules, np.nan)
    skipped = [""] * n_rules
    cols: dict[str, np.ndarray | None] = {}
    for j, rule in enumerate(RULES):
        if rule.metric not in cols:
            cols[rule.metric] = _column(metrics, rule.metric, n)
        col, thr = cols[rule.metric], _threshold(param, rule.param)
        if not rule_is_active(rule, param):
            skipped[j] = "switched off (" + ", ".join(f"{k}={as_bool(param.get(k))}" for k, _ in rule.switches) + ")"
        elif col is None:
            skipped[j] = f"metric column {rule.metric!r} missing"
        elif thr is None:
            skipped[j] = f"parameter {rule.param!r} missing"
        elif rule.gate and _column(metrics, rule.gate, n) is None:
            skipped[j] = f"metric column {rule.gate!r} missing"
        if col is not None:
            values[:, j] = col
        if thr is not None:
            thresholds[j] = thr
    evaluated = np.array([s == "" for s in skipped])
    if any(s and not s.startswith("switched off") for s in skipped):
        notes.append("rules not evaluated: " + "; ".join(
            f"{RULES[j].name}: {s}" for j, s in enumerate(skipped) if s and not s.startswith("switched off")))

    with np.errstate(invalid="ignore"):
        isnan = np.isnan(values)
        fails = ((values > thresholds) & _OP_GT) | ((values < thresholds) & _OP_LT) | (isnan & _OP_NAN)
        fails &= evaluated
        scale = np.where(np.isfinite(thresholds) & (thresholds != 0), np.abs(thresholds), 1.0)
        excess = np.where(_OP_GT, values - thresholds, thresholds - values) / scale
        excess[:, _OP_NAN] = np.where(isnan[:, _OP_NAN], np.inf, -np.inf)
    for j, rule in enumerate(RULES):
        if not evaluated[j]:
            continue
        if rule.gate:
            fails[:, j] &= ~np.isnan(_column(metrics, rule.gate, n))
        if rule.uncertain_rpv_exempt and as_bool(param.get("keepUncertainRPVUnits", False)):
            status = _column(metrics, "RPV_status", n)
            if status is not None:
                fails[:, j] &= ~(status == 0)

    n_spikes = cols.get("nSpikes")
    if n_spikes is None:
        empty = np.zeros(n, dtype=bool)
        notes.append("no nSpikes column: empty units cannot be recognised")
    else:
        empty = n_spikes == 0
    block = np.array([BLOCKS.index(r.block) for r in RULES])
    noise = fails[:, block == 0].any(axis=1) & ~empty
    group_ok = all(evaluated[j] for j in _GROUP_IDX)
    nonsoma_group = fails[:, _GROUP_IDX].all(axis=1) if group_ok else np.zeros(n, dtype=bool)
    e_idx = next(j for j, r in enumerate(RULES) if r.block == NON_SOMA and r.group is None)
    nonsoma = nonsoma_group | fails[:, e_idx]
    mua = fails[:, block == 2].any(axis=1) & ~noise

    split = as_bool(param.get("splitGoodAndMua_NonSomatic", False))
    code = np.where(noise, 0, np.where(mua, 2, 1))
    if split:
        code = np.where(nonsoma & (code == 1), 3, np.where(nonsoma & (code == 2), 4, code))
    else:
        code = np.where(nonsoma & (code != 0), 3, code)
    code = np.where(empty, 5, code)
    names = SPLIT_LABELS if split else LABELS
    label = names[code]

    # main reason: furthest past threshold within the deciding block
    ev = Evaluation(np.asarray(cluster_ids if cluster_ids is not None else np.arange(n)).astype(np.int64),
                    param, values, thresholds, skipped, fails, excess, empty, nonsoma_group, code, label,
                    np.full(n, -1), np.full(n, "", dtype=object), np.full(n, "ok", dtype=object), None, notes)
    cand_excess = np.full((n, len(CANDIDATES)), -np.inf)
    single = _SINGLE >= 0
    cand_excess[:, single] = excess[:, _SINGLE[single]]
    cand_excess[:, _GROUP_CAND] = excess[:, _GROUP_IDX].min(axis=1)
    deciding = np.select([code == 0, (code == 3) | (code == 4), code == 2], [0, 1, 2], -1)
    sel = ev.candidate_fails & (_CAND_BLOCK[None, :] == deciding[:, None])
    score = np.where(sel, cand_excess, -np.inf)
    main = np.where(sel.any(axis=1), np.argmax(score, axis=1), -1)
    ev.main = main

    n_cand = len(CANDIDATES)
    table = np.empty((len(names), n_cand + 1), dtype=object)
    good_text = GOOD_TEXT
    if ev.missing_rules:
        good_text = f"GOOD: passed all evaluated thresholds ({len(ev.missing_rules)} not evaluated)"
    for c, lab in enumerate(names):
        for k, cand in enumerate(CANDIDATES):
            text = NAN_PEAKS_TEXT if RULES[cand.rules[0]].op == "isnan" else cand.name
            table[c, k] = f"{lab}: {text}"
        table[c, n_cand] = good_text.replace("GOOD", lab, 1) if lab else EMPTY_TEXT
    ev.main_reason = table[code, main]  # main == -1 picks the last column
    ev.main_reason[empty] = EMPTY_TEXT

    if saved_labels is not None:
        saved = np.array(["" if s is None or (isinstance(s, float) and np.isnan(s)) else str(s)
                          for s in np.asarray(saved_labels, dtype=object).tolist()], dtype=object)
        ev.saved_label = saved
        bad = np.flatnonzero(saved != label)
        missing = ev.missing_rules
        for i in bad.tolist():
            if missing:
                ev.status[i] = "undetermined"
                ev.main_reason[i] = (f"{saved[i] or 'EMPTY'}: reason not determined, rules not evaluated "
                                     f"({', '.join(missing)})")
            else:
                ev.status[i] = "mismatch"
                ev.main_reason[i] = (f"{MISMATCH}: bombcell saved {saved[i]!r} but its rules give "
                                     f"{label[i]!r} (parameter or bombcell version drift)")
        if bad.size:
            notes.append(f"{bad.size} unit(s) whose recomputed label differs from bombcell's saved label")
    return ev


def switch_state(param: Mapping[str, Any]) -> dict[str, bool]:
    """The effective rule switches of a (completed) param."""
    param, _ = complete_params(dict(param))
    return {k: as_bool(param.get(k, False)) for k in SWITCHES}


__all__ = ["CANDIDATES", "Evaluation", "Rule", "evaluate", "switch_state", "MUA", "NOISE", "NON_SOMA"]
