"""Demo step: export the reason column and the audit report for a prepared folder."""

from __future__ import annotations

from pathlib import Path

from .export import export_reasons
from .report import write_report


def prepare(ks_dir: str | Path) -> str:
    """Write ``cluster_bc_classificationReason.tsv`` and ``bombcell_reasons_report/``; return a summary."""
    ks_dir = Path(ks_dir)
    result = export_reasons(ks_dir)
    write_report(result.evaluation, ks_dir / "bombcell_reasons_report")
    labels = ", ".join(f"{n} {lab or 'empty'}" for lab, n in sorted(result.labels.items()))
    return f"{result.path.name} ({labels}); report in {ks_dir / 'bombcell_reasons_report'}"
