"""What the phy plugin shows, without Qt: column values, the ``:reason`` query, the view content.

:class:`ReasonSession` is built once when phy opens a folder. Lookups are dict reads, so phy can
call them for every row; ids it has never seen (new clusters after merges/splits) get the
"not in bombcell run" reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .columns import CLASS_FIELD, FIELDS, REASON_FIELD, cluster_columns, not_in_run_columns, stale_reason
from .engine import NOT_IN_RUN, Evaluation
from .loading import BombcellOutputError, default_bombcell_dir, load_bombcell_run, warning_notes

#: 0/1 column: the cluster's reason matches the active ``:reason`` query (blank when none)
MATCH_FIELD = "bc_reasonMatch"
PHY_FIELDS = (*FIELDS, MATCH_FIELD)


def normalise(text: str) -> str:
    """Case-insensitive form where '-' and '_' are the same (phy's snippet parser eats '-')."""
    return text.lower().replace("-", "_")


@dataclass
class ViewContent:
    """Text of the reason view for one cluster."""

    cluster_id: int
    title: str
    lines: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)


class ReasonSession:
    """Reason columns of one phy session; see module docstring."""

    def __init__(self, ev: Evaluation | None, columns: dict[str, dict[int, object]], source: str,
                 notes: list[str] | None = None):
        self.ev = ev
        self.columns = columns
        self.source = source
        self.notes = list(notes or [])
        self.query: str | None = None
        self._match: dict[int, int] = {}

    # construction ---------------------------------------------------------------------------

    @classmethod
    def from_folder(cls, ks_dir: str | Path, spike_counts: Mapping[int, int],
                    bombcell_dir: str | Path | None = None,
                    exported: Mapping[int, object] | None = None) -> ReasonSession:
        """Compute reasons from the bombcell folder; fall back to an exported TSV's values.

        ``spike_counts`` are the clusters' current spike counts (phy's clustering).
        """
        folder = Path(bombcell_dir) if bombcell_dir else default_bombcell_dir(ks_dir)
        try:
            ev = load_bombcell_run(folder).evaluate()
        except (BombcellOutputError, ValueError, OSError) as exc:
            return cls.from_exported(exported or {}, spike_counts, f"{exc}")
        cols = cluster_columns(ev, sorted(set(spike_counts) | set(ev.cluster_ids.tolist())), spike_counts)
        return cls(ev, cols, f"computed from {folder}", ev.notes)

    @classmethod
    def from_exported(cls, exported: Mapping[int, object], spike_counts: Mapping[int, int],
                      why: str) -> ReasonSession:
        """Only an exported ``cluster_bc_classificationReason.tsv`` (no bombcell folder) is available."""
        cols: dict[str, dict[int, object]] = {f: {} for f in FIELDS}
        for cid, reason in exported.items():
            cols[REASON_FIELD][int(cid)] = str(reason)
            cols[CLASS_FIELD][int(cid)] = str(reason).split(":", 1)[0]
        note = f"bombcell results unavailable ({why})"
        if exported:
            note += "; showing the exported reasons only (no rule details)"
        return cls(None, cols, "exported TSV" if exported else "none", [note])

    # lookups --------------------------------------------------------------------------------

    def value(self, field_name: str, cluster_id: int) -> object:
        """Column value for phy (``cluster_metrics``); new ids are flagged, never inherited."""
        cid = int(cluster_id)
        if field_name == MATCH_FIELD:
            return self.matches(cid)
        col = self.columns.get(field_name, {})
        if cid in col:
            return col[cid]
        if self.ev is None and not self.columns[REASON_FIELD]:
            return None  # nothing loaded at all: leave the column blank
        return not_in_run_columns(cid)[field_name]

    def reason(self, cluster_id: int) -> str:
        return str(self.value(REASON_FIELD, cluster_id) or "")

    def matches(self, cluster_id: int) -> int | None:
        """1/0 when a query is active, else None."""
        if self.query is None:
            return None
        cid = int(cluster_id)
        if cid not in self._match:
            self._match[cid] = int(self.query in normalise(self.reason(cid)))
        return self._match[cid]

    def set_query(self, words: Iterable[Any], cluster_ids: Iterable[int]) -> list[int]:
        """Set the ``:reason`` query (words joined by spaces; empty clears); return matching ids."""
        text = " ".join(str(w) for w in words).strip()
        self.query = normalise(text) if text else None
        self._match = {}
        if self.query is None:
            return []
        return [int(c) for c in cluster_ids if self.matches(c)]

    def refresh_cluster(self, cluster_id: int, n_spikes: int) -> None:
        """Re-check one id after a clustering change (a reused id with a new spike count)."""
        if self.ev is None:
            return
        cid = int(cluster_id)
        stale = stale_reason(self.ev, cid, n_spikes)
        if stale is not None:
            for f, v in not_in_run_columns(cid).items():
                self.columns[f][cid] = v
            self.columns[REASON_FIELD][cid] = stale
        self._match.pop(cid, None)

    # reason view ----------------------------------------------------------------------------

    def view_content(self, cluster_id: int) -> ViewContent:
        """Every rule for the cluster: value, threshold, pass/fail and distance from flipping."""
        cid = int(cluster_id)
        reason = self.reason(cid)
        title = f"cluster {cid}: {reason or 'no reason available'}"
        if self.ev is None:
            return ViewContent(cid, title, [*self.notes, "rule details need the bombcell folder"])
        if self.value(CLASS_FIELD, cid) == NOT_IN_RUN or cid not in self.ev.row_of:
            return ViewContent(cid, title, ["bombcell never saw this cluster: rerun bombcell to classify it"])
        ev, i = self.ev, self.ev.row_of[cid]
        lines = [f"label (recomputed): {ev.label[i] or 'EMPTY'}"]
        if ev.saved_label is not None:
            lines.append(f"label saved by bombcell: {ev.saved_label[i] or 'EMPTY'}")
        all_reasons = ev.reasons_of(i)
        if all_reasons:
            lines.append("all failed rules: " + all_reasons)
        lines += [f"note: {n}" for n in warning_notes(self.notes)]
        rows = ev.rule_rows(cid)
        n_group = sum(r["state"] == "FAIL" for r in rows if r["group"])
        lines.append(f"non-somatic = (A & B & C & D) | E; AND group: {n_group}/4 members fail"
                     + (" -> fires" if ev.nonsoma_group[i] else ""))
        return ViewContent(cid, title, lines, rows)


def spike_counts_of(spike_clusters: np.ndarray) -> dict[int, int]:
    """``{cluster_id: n_spikes}`` from a spike-cluster array."""
    ids, counts = np.unique(np.asarray(spike_clusters).reshape(-1), return_counts=True)
    return dict(zip(ids.astype(np.int64).tolist(), counts.tolist(), strict=True))

