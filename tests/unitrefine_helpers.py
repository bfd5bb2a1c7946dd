"""Shared helpers for the unitrefine tests (labels from ground truth, a second generated session)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from phy_plugins.core.synthetic import load_ground_truth
from phy_plugins.core.tsv import write_cluster_tsv

SHARED_TUTORIAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "unitrefine_tutorial"


def truth_labels(ks_dir: Path) -> pd.Series:
    """'good' for clusters the generator designed as GOOD, 'other' otherwise."""
    gt = load_ground_truth(ks_dir)["clusters"]
    return pd.Series({int(c): ("good" if v["expected_label"] == "GOOD" else "other") for c, v in gt.items()})


def write_user_labels(ks_dir: Path) -> dict[int, str]:
    """Simulate a user's curation: phy's cluster_group.tsv with good / mua / noise from the ground truth."""
    gt = load_ground_truth(ks_dir)["clusters"]
    phy = {"GOOD": "good", "MUA": "mua", "NOISE": "noise", "NON-SOMA": "noise"}
    groups = {int(c): phy[v["expected_label"]] for c, v in gt.items()}
    write_cluster_tsv(ks_dir, "group", groups, allow_group=True)
    return groups
