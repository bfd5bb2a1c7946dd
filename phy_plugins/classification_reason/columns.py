"""Per-cluster columns for phy and the TSV export, with clusters bombcell never saw flagged.

A cluster is *not in the bombcell run* when its id is absent from bombcell's table, when
bombcell saw it empty but it now has spikes, or (only if bombcell counted every spike, i.e.
``computeTimeChunks`` and ``removeDuplicateSpikes`` were off) when its spike count changed.
Such clusters come from merges/splits done after the run and never inherit a stale reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .engine import NOT_IN_RUN, Evaluation
from .rules import RULES, as_bool

REASON_FIELD = "bc_classificationReason"
CLASS_FIELD = "bc_reasonClass"
RULE_FIELD = "bc_reasonRule"
N_FAILED_FIELD = "bc_nFailedRules"
BLOCK_FIELDS = {"NOISE": "bc_failsNoise", "NON-SOMA": "bc_failsNonSoma", "MUA": "bc_failsMua"}
#: every column this plugin adds to phy, main reason first
FIELDS = (REASON_FIELD, CLASS_FIELD, RULE_FIELD, N_FAILED_FIELD, *BLOCK_FIELDS.values())
NOT_IN_RUN_TEXT = f"{NOT_IN_RUN}: cluster created after the bombcell run (merge/split), rerun bombcell"


def counts_are_comparable(param: Mapping[str, Any]) -> bool:
    """bombcell's ``nSpikes`` equals the sorter's count only without time chunks/duplicate removal."""
    return not as_bool(param.get("computeTimeChunks", False)) and not as_bool(
        param.get("removeDuplicateSpikes", False))


def stale_reason(ev: Evaluation, cluster_id: int, n_spikes: int | None) -> str | None:
    """Why ``cluster_id`` is not covered by the bombcell run, or None if it is."""
    row = ev.row_of.get(int(cluster_id))
    if row is None:
        return NOT_IN_RUN_TEXT
    if not n_spikes:  # unknown, or the cluster no longer exists: keep what bombcell said
        return None
    nb = ev.columns[_NSPIKES_COL][row]
    if np.isnan(nb):
        return None
    if nb == 0 and n_spikes > 0:
        return f"{NOT_IN_RUN}: empty in the bombcell run but has {n_spikes} spikes now (merge/split)"
    if counts_are_comparable(ev.param) and int(nb) != int(n_spikes):
        return (f"{NOT_IN_RUN}: spike count changed since the bombcell run ({int(nb)} then, "
                f"{int(n_spikes)} now)")
    return None


_NSPIKES_COL = next(j for j, r in enumerate(RULES) if r.metric == "nSpikes")


def cluster_columns(
    ev: Evaluation,
    cluster_ids: Iterable[int],
    n_spikes: Mapping[int, int] | None = None,
) -> dict[str, dict[int, object]]:
    """``{field: {cluster_id: value}}`` for :data:`FIELDS` over ``cluster_ids``.

    ``n_spikes`` (current spike counts) enables the stale-cluster checks beyond missing ids.
    """
    out: dict[str, dict[int, object]] = {f: {} for f in FIELDS}
    reason, klass, key = ev.main_reason, ev.reason_class, ev.main_key
    n_failed = ev.n_failed
    blocks = {f: ev.block_fails(b) for b, f in BLOCK_FIELDS.items()}
    for cid in cluster_ids:
        cid = int(cid)
        stale = stale_reason(ev, cid, None if n_spikes is None else n_spikes.get(cid, 0))
        if stale is not None:
            for f, v in not_in_run_columns(cid).items():
                out[f][cid] = v
            out[REASON_FIELD][cid] = stale
            continue
        i = ev.row_of[cid]
        out[REASON_FIELD][cid] = reason[i]
        out[CLASS_FIELD][cid] = klass[i]
        out[RULE_FIELD][cid] = key[i]
        out[N_FAILED_FIELD][cid] = int(n_failed[i])
        for f, arr in blocks.items():
            out[f][cid] = int(arr[i])
    return out


def not_in_run_columns(cluster_id: int) -> dict[str, object]:
    """Column values for a cluster id the loaded run does not cover."""
    return {REASON_FIELD: NOT_IN_RUN_TEXT, CLASS_FIELD: NOT_IN_RUN, RULE_FIELD: "", N_FAILED_FIELD: None,
            **{f: None for f in BLOCK_FIELDS.values()}}
