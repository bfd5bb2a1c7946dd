"""Export ``cluster_bc_classificationReason.tsv`` for a Kilosort folder (phy's one-field layout)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.tsv import write_cluster_tsv
from .columns import CLASS_FIELD, REASON_FIELD, cluster_columns
from .engine import NOT_IN_RUN, Evaluation
from .loading import default_bombcell_dir, load_bombcell_run
from .session import spike_counts_of


@dataclass
class ExportResult:
    """What :func:`export_reasons` did for one folder."""

    ks_dir: Path
    path: Path
    labels: Counter
    reason_classes: Counter
    n_units: int
    n_not_in_run: int
    n_mismatch: int
    evaluation: Evaluation
    notes: list[str] = field(default_factory=list)


def current_spike_counts(ks_dir: str | Path) -> dict[int, int] | None:
    """``{cluster_id: n_spikes}`` from ``spike_clusters.npy`` (None if the file is absent)."""
    path = Path(ks_dir) / "spike_clusters.npy"
    if not path.is_file():
        return None
    return spike_counts_of(np.load(path, mmap_mode="r"))


def evaluate_folder(ks_dir: str | Path, bombcell_dir: str | Path | None = None) -> Evaluation:
    """Load and evaluate the bombcell run of ``ks_dir`` (default ``KS_DIR/bombcell``)."""
    return load_bombcell_run(bombcell_dir or default_bombcell_dir(ks_dir)).evaluate()


def reason_table(ks_dir: str | Path, ev: Evaluation) -> dict[str, dict[int, object]]:
    """Columns for every bombcell unit and every cluster now in ``spike_clusters.npy``."""
    counts = current_spike_counts(ks_dir)
    ids = set(ev.cluster_ids.tolist()) | set(counts or ())
    return cluster_columns(ev, sorted(ids), counts)


def export_reasons(ks_dir: str | Path, bombcell_dir: str | Path | None = None) -> ExportResult:
    """Compute and atomically write ``KS_DIR/cluster_bc_classificationReason.tsv``.

    Everything is computed before anything is written, so a failure leaves the folder as it was.
    """
    ks_dir = Path(ks_dir)
    if not ks_dir.is_dir():
        raise FileNotFoundError(f"Kilosort folder not found: {ks_dir}")
    ev = evaluate_folder(ks_dir, bombcell_dir)
    cols = reason_table(ks_dir, ev)
    reasons = cols[REASON_FIELD]
    path = write_cluster_tsv(ks_dir, REASON_FIELD, reasons)
    classes = Counter(cols[CLASS_FIELD].values())
    labels = Counter(lab if lab else "(empty)" for lab in ev.label.tolist())
    return ExportResult(ks_dir, path, labels, classes, len(ev), classes.get(NOT_IN_RUN, 0),
                        int(np.count_nonzero(ev.status_code)), ev, list(ev.notes))
