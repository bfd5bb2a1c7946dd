"""Demo step: train a UnitRefine model on a second, separately generated "curated" session and
predict the demo folder with it (never training on the folder it predicts)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from phy_plugins.core.synthetic import generate_dataset, load_ground_truth
from phy_plugins.core.tsv import write_cluster_tsv
from phy_plugins.unitrefine.tables import apply_label_map

DEMO_DIR = "unitrefine_demo"
# the class the generator designed a cluster as (ground_truth.json) -> the phy group a curator gives it
TRUTH_GROUPS = {"GOOD": "good", "MUA": "mua", "NOISE": "noise", "NON-SOMA": "noise"}
GOOD_VS_OTHER = {"good": "good", "mua": "other", "noise": "other"}


def truth_groups(ks_dir: str | Path) -> dict[int, str]:
    """phy group (good/mua/noise) of each cluster of a generated folder, from its ground truth."""
    gt = load_ground_truth(ks_dir)["clusters"]
    return {int(c): TRUTH_GROUPS[v["expected_label"]] for c, v in gt.items()}


def write_truth_groups(ks_dir: str | Path) -> dict[int, str]:
    """Curate a generated folder as a user would: ``cluster_group.tsv`` from :func:`truth_groups`."""
    groups = truth_groups(ks_dir)
    write_cluster_tsv(ks_dir, "group", groups, allow_group=True)
    return groups


def truth_labels(ks_dir: str | Path) -> pd.Series:
    """'good' or 'other' (the demo model's classes) for each cluster of a generated folder."""
    return apply_label_map(pd.Series(truth_groups(ks_dir), dtype=object), GOOD_VS_OTHER)


def prepare(ks_dir: str | Path) -> str:
    """Train (quick grid) on a curated training session, write the prediction TSVs; return a summary."""
    from phy_plugins.unitrefine import workflows as wf
    from phy_plugins.unitrefine.train import TINY_GRID

    ks_dir = Path(ks_dir)
    base = ks_dir / DEMO_DIR
    model_dir = base / "model_good_vs_other"
    if not (model_dir / "best_model.skops").exists():
        seed = int(load_ground_truth(ks_dir).get("seed", 0)) + 1 if (ks_dir / "ground_truth.json").exists() else 1
        train_dir = generate_dataset(base / "training_session", seed=seed)
        write_truth_groups(train_dir)  # stands for a recording a user has already curated in phy
        wf.train_folders([train_dir], model_dir, label_map=GOOD_VS_OTHER, grid=TINY_GRID, overwrite=True)
    models = wf.load_models([model_dir])
    metrics, _ = wf.folder_features(ks_dir, wf.required_features(models))
    pred, _ = wf.predict_table(models, metrics)
    wf.write_prediction_tsvs(ks_dir, pred)
    counts = ", ".join(f"{n} {lab}" for lab, n in pred["prediction"].value_counts().items())
    return f"model {model_dir} -> cluster_unitrefine_label.tsv ({counts})"


def demo_settings(ks_dir: str | Path) -> dict:
    """The plugin settings the demo's phy session uses (the model trained above)."""
    model_dir = Path(ks_dir) / DEMO_DIR / "model_good_vs_other"
    return {"model": str(model_dir)} if (model_dir / "best_model.skops").exists() else {}

