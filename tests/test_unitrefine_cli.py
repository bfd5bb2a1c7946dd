"""``phy-plugins unitrefine train|predict`` end to end (real files, real models)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from unitrefine_helpers import SHARED_TUTORIAL

from phy_plugins.cli import main
from phy_plugins.core.synthetic import generate_dataset
from phy_plugins.core.tsv import read_cluster_tsv
from phy_plugins.unitrefine.demo import write_truth_groups

FAST = ["--quick", "--classifiers", "LogisticRegression", "--imputers", "median", "--scalers",
        "standard_scaler", "--folds", "3", "--jobs", "1"]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    dirs = [generate_dataset(root / f"s{seed}", seed=seed) for seed in (4, 5)]
    for d in dirs:
        write_truth_groups(d)
    return dirs


def test_train_on_two_sessions_then_predict_into_phy_tsvs(labelled, tmp_path, capsys):
    a, b = labelled
    out = tmp_path / "model"
    rc = main(["unitrefine", "train", str(a), str(b), "--out", str(out), "--map", "good=good",
               "--map", "mua,noise=other", *FAST])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "leave-one-session-out" in text
    assert "Leave-one-session-out" in (out / "training_report.md").read_text()
    group_before = (a / "cluster_group.tsv").read_text()
    rc = main(["unitrefine", "predict", str(a), "--model", str(out)])
    assert rc == 0
    labels = read_cluster_tsv(a, "unitrefine_label")
    conf = read_cluster_tsv(a, "unitrefine_confidence")
    groups = read_cluster_tsv(a, "group")
    assert set(labels) == set(conf) == set(groups)
    assert set(labels.values()) <= {"good", "other"}
    assert all(0.5 <= v <= 1 for v in conf.values())
    assert (a / "cluster_group.tsv").read_text() == group_before  # never touched
    rc = main(["unitrefine", "predict", str(a), "--model", str(out), "--raw-amplitudes"])
    assert rc == 0 and "note: source amplitude_median: filtered raw traces" in capsys.readouterr().out
    # an existing model is not overwritten without --overwrite
    stamp = (out / "best_model.skops").read_bytes()
    assert main(["unitrefine", "train", str(a), "--out", str(out), *FAST]) == 2
    assert (out / "best_model.skops").read_bytes() == stamp


def test_cascade_trained_from_csv_tables(labelled, tmp_path):
    from phy_plugins.unitrefine.phy_features import compute_features
    from phy_plugins.unitrefine.tables import read_phy_labels

    frames, labels = [], []
    for k, d in enumerate(labelled):  # two sessions in one table, ids made unique
        feats, _ = compute_features(d)
        frames.append(feats.set_axis(feats.index + 1000 * k))
        lab = read_phy_labels(d)
        labels.append(lab.set_axis(lab.index + 1000 * k))
    metrics, labels_csv = tmp_path / "metrics.csv", tmp_path / "labels.csv"
    pd.concat(frames).to_csv(metrics)
    pd.concat(labels).rename_axis("cluster_id").rename("label").to_csv(labels_csv)
    m1, m2 = tmp_path / "noise", tmp_path / "sua"
    common = ["--metrics", str(metrics), "--labels", str(labels_csv), *FAST]
    assert main(["unitrefine", "train", "--out", str(m1), "--map", "noise=noise", "--map", "good,mua=neural",
                 *common]) == 0
    assert main(["unitrefine", "train", "--out", str(m2), "--map", "good=sua", "--map", "mua=mua", *common]) == 0
    pred = tmp_path / "pred.csv"
    assert main(["unitrefine", "predict", "--metrics", str(metrics), "--model", str(m1), "--model", str(m2),
                 "--out", str(pred)]) == 0
    table = pd.read_csv(pred)
    assert list(table.columns) == ["cluster_id", "prediction", "confidence"]
    assert set(table["prediction"]) == {"noise", "sua", "mua"}
    assert table["confidence"].between(0.25, 1).all()
    # fast update of the second model on the same tables, no search
    assert main(["unitrefine", "train", "--refit", str(m2), "--out", str(tmp_path / "sua2"), "--map", "good=sua",
                 "--map", "mua=mua", "--metrics", str(metrics), "--labels", str(labels_csv)]) == 0
    assert (tmp_path / "sua2" / "best_model.skops").is_file()
    assert main(["unitrefine", "train", "--refit", str(m2), "--out", str(tmp_path / "bad"), "--map", "good=good",
                 "--map", "mua=mua", "--metrics", str(metrics), "--labels", str(labels_csv)]) == 1
    # --refit reads its labels like a search does: CSVs and KS_DIRs together, or one CSV alone, are refused
    both = [str(labelled[0]), "--metrics", str(metrics), "--labels", str(labels_csv)]
    for extra in (both, ["--metrics", str(metrics)]):
        assert main(["unitrefine", "train", "--refit", str(m2), "--out", str(tmp_path / "x"), *extra]) == 2
    assert not (tmp_path / "x").exists()


def test_bad_inputs_fail_cleanly(labelled, tmp_path, capsys):
    a, _ = labelled
    # labels that do not match the metrics ids
    metrics = tmp_path / "m.csv"
    pd.DataFrame({"cluster_id": [1, 2, 3], "snr": [1.0, 2.0, 3.0]}).to_csv(metrics, index=False)
    labels = tmp_path / "l.csv"
    pd.DataFrame({"cluster_id": [101, 102], "label": ["good", "mua"]}).to_csv(labels, index=False)
    assert main(["unitrefine", "train", "--metrics", str(metrics), "--labels", str(labels),
                 "--out", str(tmp_path / "x"), *FAST]) == 1
    assert "match" in capsys.readouterr().err
    assert not (tmp_path / "x" / "best_model.skops").exists()
    # missing model folder / corrupt model: message, no TSV written
    assert main(["unitrefine", "predict", str(a), "--model", str(tmp_path / "none")]) == 1
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "best_model.skops").write_text("junk")
    before = sorted(p.name for p in a.iterdir())
    assert main(["unitrefine", "predict", str(a), "--model", str(bad)]) == 1
    assert "corrupt" in capsys.readouterr().err
    assert sorted(p.name for p in a.iterdir()) == before
    # --metrics without --out
    assert main(["unitrefine", "predict", "--metrics", str(metrics), "--model", str(bad)]) in (1, 2)


@pytest.mark.skipif(not SHARED_TUTORIAL.is_dir(), reason="../shared/data/unitrefine_tutorial absent")
def test_predict_tutorial_metrics_csv_matches_unitrefine(tmp_path):
    out = tmp_path / "pred.csv"
    assert main(["unitrefine", "predict", "--metrics", str(SHARED_TUTORIAL / "new_data.csv"),
                 "--model", str(SHARED_TUTORIAL), "--out", str(out)]) == 0
    ours = pd.read_csv(out)
    ref = pd.read_csv(SHARED_TUTORIAL / "model_predictions.csv")
    assert ours["prediction"].tolist() == ref["predicted_quality"].tolist()
    shutil.rmtree(tmp_path)
