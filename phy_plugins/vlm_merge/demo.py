"""Demo step: offline merge suggestions for the demo dataset (no API, no key)."""
from __future__ import annotations

from pathlib import Path


def prepare(ks_dir: str | Path) -> str:
    """Judge the candidate pairs with the offline judge; return a one-line summary."""
    from . import pipeline
    from .evidence import load_sorting

    ks_dir = Path(ks_dir)
    report = pipeline.run(load_sorting(ks_dir), ks_dir, pipeline.RunConfig(model="offline"))
    return (f"{report.summary()} -> {report.csv_path.name}, {report.curation_path.name} "
            "(AI > Show merge suggestions in phy)")
