"""The UnitRefine plugin inside a real phy GUI (offscreen)."""

from __future__ import annotations

import shutil

import numpy as np

from phy_plugins.core.phy_safety import FAILURES
from phy_plugins.core.settings import save_plugin_settings
from phy_plugins.core.synthetic import generate_dataset
from phy_plugins.unitrefine import workflows as wf
from phy_plugins.unitrefine.demo import write_truth_groups
from phy_plugins.unitrefine.tables import read_phy_labels

PLUGIN = "PhyPluginsUnitRefinePlugin"


def _train_model(tmp_path):
    """A real model trained on another generated session (classes good / mua, as phy groups)."""
    other = generate_dataset(tmp_path / "other", seed=3)
    write_truth_groups(other)
    wf.train_folders([other], tmp_path / "model", label_map={"good": "good", "mua": "mua", "noise": "mua"},
                     classifiers=["LogisticRegression"], imputers=["median"], scalers=["standard_scaler"],
                     folds=3, n_jobs=1)
    return tmp_path / "model"


def test_columns_apply_threshold_undo_merge_and_bad_model(synthetic_ks, phy_gui, tmp_path):
    model_dir = _train_model(tmp_path)
    cfg = tmp_path / "cfg"
    save_plugin_settings("unitrefine", {"model": str(model_dir)}, config_dir=cfg)
    controller, gui = phy_gui(synthetic_ks, plugins=[PLUGIN], config_dir=cfg)
    plugin = controller.phy_plugins_unitrefine
    sup = controller.supervisor
    assert plugin.task is not None and plugin.task.wait(60)
    ids = [int(c) for c in sup.clustering.cluster_ids]
    # the menu is there and no callback of ours failed
    for name in ("predict now", "load model folder", "apply predictions as labels", "sort by least confidence",
                 "train a model from my labels", "update my model (fast refit)", "cancel"):
        assert plugin.actions.get(f"UnitRefine: {name}") is not None, name
    assert not [f for f in FAILURES if "UnitRefine" in f[0]]
    # both columns are shown for every cluster
    assert {"ur_label", "ur_conf"} <= set(sup.cluster_view.columns)
    rows = {c: sup.cluster_view.get(c) for c in ids}
    assert all(rows[c]["ur_label"] in ("good", "mua") for c in ids)
    assert all(0.5 <= rows[c]["ur_conf"] <= 1.0 for c in ids)

    # apply predictions above a threshold, then undo
    before = {c: sup.cluster_meta.get("group", c) for c in ids}
    threshold = float(np.median([rows[c]["ur_conf"] for c in ids]))
    plan = plugin.apply_predictions(threshold)
    labelled = [c for v in plan.values() for c in v]
    assert 0 < len(labelled) < len(ids)  # only the confident ones
    for group, members in plan.items():
        assert all(sup.cluster_meta.get("group", c) == group for c in members)
    untouched = set(ids) - set(labelled)
    assert all(sup.cluster_meta.get("group", c) == before[c] for c in untouched)
    for _ in plan:
        sup.undo()
    assert {c: sup.cluster_meta.get("group", c) for c in ids} == before

    # least confident first (through the menu action)
    plugin.actions.get("UnitRefine: sort by least confidence").trigger()
    order = sup.cluster_view.get_ids()
    confs = [plugin.store.confidence(c) for c in order]
    assert confs == sorted(confs)

    # a merge creates a new cluster that gets its own prediction
    sup.merge([ids[0], ids[1]])
    new = max(int(c) for c in sup.clustering.cluster_ids)
    assert new not in ids
    assert plugin.task.wait(60)
    assert plugin.store.label(new) in ("good", "mua")
    assert sup.cluster_view.get(new)["ur_conf"] == plugin.store.confidence(new)

    # a bad model folder: clear message, previous model kept, phy keeps running
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "best_model.skops").write_bytes(b"garbage")
    models = list(plugin.models)
    assert plugin.load_models([str(broken)]) is False
    assert plugin.models == models
    assert "corrupt" in plugin.messages[-1]
    assert "UnitRefine" in gui.status_message


def test_train_from_current_labels_in_background(synthetic_ks, phy_gui, tmp_path):
    groups = write_truth_groups(synthetic_ks)
    cfg = tmp_path / "cfg"
    save_plugin_settings("unitrefine", {"label_map": {"good": "good", "mua": "mua", "noise": "mua"},
                                        "classifiers": ["LogisticRegression"], "jobs": 1}, config_dir=cfg)
    controller, gui = phy_gui(synthetic_ks, plugins=[PLUGIN], config_dir=cfg)
    plugin = controller.phy_plugins_unitrefine
    assert plugin.models == [] and plugin.task is None  # no model configured: nothing runs
    task = plugin.train_from_labels()
    assert task.wait(120) and task.exception is None
    out = task.result[0]
    assert (out / "best_model.skops").is_file() and (out / "training_report.md").is_file()
    assert out.parent == synthetic_ks / "unitrefine_models"
    assert plugin.models and plugin.task.wait(60)
    assert set(plugin.store.labels) == {int(c) for c in controller.supervisor.clustering.cluster_ids}
    # cluster_group.tsv was not touched by training
    assert read_phy_labels(synthetic_ks).to_dict() == groups
    # fast refit on the same labels
    task = plugin.update_model()
    assert task.wait(60) and task.exception is None
    assert task.result[0] != out
