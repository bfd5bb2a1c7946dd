"""Pure engine of the unitrefine plugin: model folders, features, prediction, training."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import balanced_accuracy_score
from unitrefine_helpers import SHARED_TUTORIAL

from phy_plugins.core.synthetic import generate_dataset, load_ground_truth
from phy_plugins.unitrefine import workflows as wf
from phy_plugins.unitrefine.demo import truth_labels, write_truth_groups
from phy_plugins.unitrefine.metrics_spiketrain import (
    firing_range,
    isi_violations,
    presence_ratio,
    rp_violations,
    synchrony,
)
from phy_plugins.unitrefine.model_io import ModelError, UnitRefineModel, load_model, restore_sklearn_compat
from phy_plugins.unitrefine.phy_features import ALL_METRICS, compute_features
from phy_plugins.unitrefine.predict import feature_matrix, predict, predict_cascade
from phy_plugins.unitrefine.tables import (
    TableError,
    apply_label_map,
    parse_label_map,
    read_bombcell_metrics,
    read_labels_csv,
    read_metrics_table,
    read_phy_labels,
)
from phy_plugins.unitrefine.train import TrainingError, make_pipeline, refit, search, training_set

SMALL_GRID = {"RandomForestClassifier": [{"n_estimators": 30, "class_weight": "balanced"}],
              "LogisticRegression": [{"C": 1.0, "class_weight": "balanced", "max_iter": 2000}]}
FAST = dict(classifiers=["RandomForestClassifier", "LogisticRegression"], imputers=["median"],
            scalers=["standard_scaler"], folds=3, n_jobs=1, grid=SMALL_GRID)
needs_shared = pytest.mark.skipif(not SHARED_TUTORIAL.is_dir(), reason="../shared/data/unitrefine_tutorial absent")


@pytest.fixture(scope="module")
def session0(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("ur") / "s0", seed=0)


@pytest.fixture(scope="module")
def session1(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("ur") / "s1", seed=1)


@pytest.fixture(scope="module")
def features0(session0):
    return compute_features(session0)


@pytest.fixture(scope="module")
def features1(session1):
    return compute_features(session1)


def _model(result) -> UnitRefineModel:
    conv = {str(k): v for k, v in result.label_conversion.items()}
    return UnitRefineModel(pipeline=result.pipeline, info={"label_conversion": conv})


# ---------------------------------------------------------------- tutorial model (real UnitRefine folder)


@needs_shared
def test_tutorial_model_reproduces_unitrefine_labels_exactly():
    model = load_model(SHARED_TUTORIAL)
    assert any("_fill_dtype" in n for n in model.notes)
    assert any("1.6.1" in n for n in model.notes)  # version difference reported
    data = read_metrics_table(SHARED_TUTORIAL / "new_data.csv")
    ref = pd.read_csv(SHARED_TUTORIAL / "model_predictions.csv")
    pred, check = predict(model, data)
    assert len(pred) == 50
    assert list(pred.index) == ref["cluster_id"].tolist()
    assert pred["prediction"].tolist() == ref["predicted_quality"].tolist()
    # confidence == the loaded pipeline's own max predict_proba on the same features
    x, _ = feature_matrix(data, model.feature_names)
    own = model.pipeline.predict_proba(pd.DataFrame(x, columns=model.feature_names)).max(axis=1)
    np.testing.assert_array_equal(pred["confidence"].to_numpy(), own)
    assert check.missing == []


@needs_shared
def test_tutorial_model_refused_without_allow_list_entries(tmp_path):
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=SHARED_TUTORIAL / "best_model.skops")
    assert "sklearn.tree._tree.Tree" in untrusted  # what recent skops refuses by default
    load_model(SHARED_TUTORIAL)  # our allow-list covers it


@needs_shared
def test_tutorial_labels_csv_layout_and_phy_group_file():
    labels = read_labels_csv(SHARED_TUTORIAL / "labels.csv")
    assert set(labels.unique()) == {0, 1}
    metrics = read_metrics_table(SHARED_TUTORIAL / "quality_metrics.csv")
    assert len(metrics) == 796 and "snr" in metrics.columns
    groups = read_labels_csv(SHARED_TUTORIAL / "cluster_group.tsv")
    assert groups.value_counts().to_dict() == {"mua": 403, "noise": 331, "good": 62}


# ---------------------------------------------------------------- model folders


def _tiny_pipeline(n_features=4, seed=0):
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(60, n_features)), columns=[f"f{i}" for i in range(n_features)])
    y = (x["f0"] + 0.3 * rng.normal(size=60) > 0).astype(int)
    return make_pipeline("median", "standard_scaler", "RandomForestClassifier", {"n_estimators": 20}).fit(x, y), x, y


def test_save_and_load_round_trip(tmp_path):
    pipe, x, y = _tiny_pipeline()
    from phy_plugins.unitrefine.model_io import save_model

    save_model(tmp_path / "m", pipe, label_conversion={0: "bad", 1: "good"}, training_data=x)
    info = json.loads((tmp_path / "m" / "model_info.json").read_text())
    assert info["label_conversion"] == {"0": "bad", "1": "good"}
    assert info["metric_params"]["quality_metric_params"]["metric_names"] == ["f0", "f1", "f2", "f3"]
    model = load_model(tmp_path / "m")
    pred, _ = predict(model, x)
    assert set(pred["prediction"]) <= {"bad", "good"}
    np.testing.assert_allclose(pred["confidence"], pipe.predict_proba(x).max(axis=1))
    with pytest.raises(ModelError, match="exists"):
        save_model(tmp_path / "m", pipe, label_conversion={0: "bad", 1: "good"})


def _untrusted_transform(x):
    return x


def test_untrusted_types_are_refused_and_named(tmp_path):
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    pipe, x, y = _tiny_pipeline()
    evil = Pipeline([("f", FunctionTransformer(_untrusted_transform)), *pipe.steps]).fit(x, y)
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "best_model.skops").write_bytes(sio.dumps(evil))
    with pytest.raises(ModelError, match="_untrusted_transform"):
        load_model(folder)
    assert load_model(folder, trust=True).pipeline is not None


def test_corrupt_and_missing_model_files_give_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no .skops"):
        load_model(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "best_model.skops").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="corrupt"):
        load_model(bad)
    pipe, _, _ = _tiny_pipeline()
    import skops.io as sio

    half = tmp_path / "half"
    half.mkdir()
    (half / "best_model.skops").write_bytes(sio.dumps(pipe)[:500])
    with pytest.raises(ModelError):
        load_model(half)
    (half / "best_model.skops").write_bytes(sio.dumps(pipe))
    (half / "model_info.json").write_text("{broken")
    with pytest.raises(ModelError, match="JSON"):
        load_model(half)


def test_fill_dtype_restoration_makes_old_imputers_predict():
    pipe, x, _ = _tiny_pipeline()
    x = x.copy()
    x.iloc[0, 0] = np.nan
    imputer = pipe.steps[0][1]
    del imputer._fill_dtype  # what a scikit-learn <= 1.7 pickle looks like in >= 1.8
    with pytest.raises(AttributeError):
        pipe.predict(x)
    fixed = restore_sklearn_compat(pipe)
    assert fixed and "_fill_dtype" in fixed[0]
    assert len(pipe.predict(x)) == len(x)


def test_feature_matrix_order_inf_and_missing_report():
    frame = pd.DataFrame({"b": [1.0, np.inf], "a": [3.0, -np.inf], "c": ["x", "y"]}, index=[5, 7])
    x, check = feature_matrix(frame, ["a", "b", "z"])
    assert x.dtype == np.float32
    assert x[0, 0] == 3.0 and x[0, 1] == 1.0
    assert np.isnan(x[1, 0]) and np.isnan(x[1, 1]) and np.isnan(x[:, 2]).all()
    assert check.missing == ["z"]
    # SpikeInterface >= 0.103 names are mapped back to the 0.102 names a model asks for
    new = pd.DataFrame({"peak_to_trough_duration": [1e-3], "peak_after_to_trough_ratio": [0.4]})
    x, check = feature_matrix(new, ["peak_to_valley", "peak_trough_ratio"])
    assert x[0].tolist() == pytest.approx([1e-3, -0.4]) and not check.missing


def test_prediction_reports_missing_features_and_their_importance():
    pipe, x, _ = _tiny_pipeline()
    model = UnitRefineModel(pipe, {"label_conversion": {"0": "bad", "1": "good"}})
    pred, check = predict(model, x.drop(columns=["f0"]))
    assert check.missing == ["f0"]
    imp = model.feature_importances()
    assert check.importance_missing == pytest.approx(imp["f0"])
    assert "f0" in check.message() and "%" in check.message()
    assert (pred["n_imputed"] == 1).all()
    with pytest.raises(ModelError, match="none of the 4 features"):
        predict(model, pd.DataFrame({"other": [1.0]}))


def test_cascade_confidence_is_product_for_neural_units():
    rng = np.random.default_rng(1)
    x = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    noise = (x["a"] > 0.3).astype(int)
    sua = (x["b"] > 0).astype(int)
    m1 = UnitRefineModel(make_pipeline("median", "standard_scaler", "LogisticRegression", {}).fit(x, noise),
                         {"label_conversion": {"0": "neural", "1": "noise"}})
    m2 = UnitRefineModel(make_pipeline("median", "standard_scaler", "LogisticRegression", {}).fit(x, sua),
                         {"label_conversion": {"0": "mua", "1": "sua"}})
    out, checks = predict_cascade(m1, m2, x)
    p1, _ = predict(m1, x)
    p2, _ = predict(m2, x)
    is_noise = p1["prediction"] == "noise"
    assert 0 < is_noise.sum() < len(x)
    assert (out.loc[is_noise, "prediction"] == "noise").all()
    np.testing.assert_allclose(out.loc[is_noise, "confidence"], p1.loc[is_noise, "confidence"])
    assert set(out.loc[~is_noise, "prediction"]) <= {"mua", "sua"}
    np.testing.assert_allclose(out.loc[~is_noise, "confidence"],
                               p1.loc[~is_noise, "confidence"] * p2.loc[~is_noise, "confidence"])
    with pytest.raises(ModelError, match="noise"):
        predict_cascade(m2, m1, x)


# ---------------------------------------------------------------- spike-train metrics (exact definitions)


def test_spike_train_metrics_on_hand_made_trains():
    fs = 30000.0
    st_ = np.array([0, 30, 3000, 3020, 3040, 90000, 1_800_000 - 1])  # 60 s recording
    ratio, count = isi_violations(st_, 60.0, fs)
    assert count == 3  # isis of 1 ms, 0.67 ms, 0.67 ms are < 1.5 ms
    assert ratio == pytest.approx((3 / (2 * 7 * 0.0015)) / (7 / 60.0))
    contamination, n_v = rp_violations(st_, 1_800_000, fs)
    assert n_v == 3  # pairs within 1 ms (30 samples): (0,30), (3000,3020), (3020,3040); 40 samples is 1.33 ms
    assert presence_ratio(st_, 1_800_000, fs) == 1.0
    assert np.isnan(presence_ratio(st_, 1_000_000, fs))  # shorter than one 60 s bin
    assert presence_ratio(np.array([10, 20]), 3_600_000, fs) == 0.5
    assert firing_range(np.arange(0, 1_800_000, 3000), 1_800_000, fs) == pytest.approx(0.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3000), min_size=2, max_size=60))
def test_rp_violations_count_every_close_pair(times):
    st_ = np.sort(np.array(times, dtype=np.int64))
    _, n_v = rp_violations(st_, 100_000, 30000.0)
    brute = sum(1 for i in range(len(st_)) for j in range(i + 1, len(st_)) if st_[j] - st_[i] <= 30)
    assert n_v == brute


def test_synchrony_counts_spikes_shared_with_other_units():
    times = np.array([100, 100, 100, 100, 200, 200, 300, 400])
    clusters = np.array([1, 2, 3, 4, 1, 2, 1, 3])
    sync = synchrony(times, clusters)
    assert sync[2][1] == pytest.approx(2 / 3) and sync[2][3] == pytest.approx(1 / 2)
    assert sync[4][1] == pytest.approx(1 / 3) and sync[4][4] == 1.0
    assert sync[8][1] == 0.0


# ---------------------------------------------------------------- features from a phy folder


def test_features_of_generated_session(session0, features0):
    frame, report = features0
    assert list(frame.columns) == list(ALL_METRICS)
    spikes = np.load(session0 / "spike_clusters.npy")
    ids, counts = np.unique(spikes, return_counts=True)
    assert frame.index.tolist() == ids.tolist()
    assert frame["num_spikes"].tolist() == counts.tolist()
    truth = truth_labels(session0)
    rules = {int(c): v["designed_rule"] for c, v in load_ground_truth(session0)["clusters"].items()}
    by_rule = {r: [c for c, v in rules.items() if v == r] for r in set(rules.values())}
    good = truth[truth == "good"].index
    # units designed to fail a rule are the outliers on the matching metric
    assert frame.loc[by_rule["rawAmplitude<minAmplitude"], "snr"].max() < frame.loc[good, "snr"].min()
    assert frame.loc[by_rule["nSpikes<minNumSpikes"], "num_spikes"].max() < frame.loc[good, "num_spikes"].min()
    rpv = by_rule["fractionRPVs_estimatedTauR>maxRPVviolations"]
    assert frame.loc[rpv, "rp_contamination"].min() > frame.loc[good, "rp_contamination"].max()
    assert frame["snr"].notna().all()  # raw file present
    assert "snr" not in report.unavailable
    assert {"drift_ptp", "velocity_above"} <= set(report.unavailable)  # 60 s recording, compact probe
    assert "isolation_distance" in report.approximate


def test_features_follow_phy_merges_and_report_missing_raw(session0, tmp_path):
    spikes = np.load(session0 / "spike_clusters.npy").copy()
    merged = spikes.max() + 1
    spikes[np.isin(spikes, [3, 19])] = merged
    frame, _ = compute_features(session0, spike_clusters=spikes, cluster_ids=[merged, 0],
                                names=["num_spikes", "firing_rate", "peak_to_valley", "snr"])
    assert frame.loc[merged, "num_spikes"] == np.isin(np.load(session0 / "spike_clusters.npy"), [3, 19]).sum()
    assert np.isfinite(frame.loc[merged, "peak_to_valley"])
    # without the raw file: snr is NaN and the user is told why
    noraw = tmp_path / "noraw"
    shutil.copytree(session0, noraw, ignore=shutil.ignore_patterns("recording.dat"))
    frame, report = compute_features(noraw, names=["num_spikes", "snr", "l_ratio"], cluster_ids=[0, 1, 2])
    assert frame["snr"].isna().all()
    assert "raw" in report.unavailable["snr"]
    assert frame["l_ratio"].notna().any()
    (noraw / "pc_features.npy").unlink()
    _, report = compute_features(noraw, names=["l_ratio"])
    assert "pc_features" in report.unavailable["l_ratio"]


def test_bombcell_metrics_table_is_accepted(synthetic_ks_session):
    table = read_bombcell_metrics(synthetic_ks_session / "bombcell")
    assert len(table) > 0 and table.index.name == "cluster_id"
    assert table.select_dtypes("number").shape[1] > 5


# ---------------------------------------------------------------- labels


def test_phy_labels_and_label_maps(session0, tmp_path):
    d = tmp_path / "s"
    shutil.copytree(session0, d, ignore=shutil.ignore_patterns("recording.dat"))
    with pytest.raises(TableError, match="no labels"):
        read_phy_labels(d)
    groups = write_truth_groups(d)
    labels = read_phy_labels(d)
    assert labels.to_dict() == groups
    mapped = apply_label_map(labels, parse_label_map(["good=good", "mua,noise=other"]))
    assert set(mapped) == {"good", "other"} and len(mapped) == len(labels)
    only = apply_label_map(labels, parse_label_map(["good=sua", "mua=mua"]))
    assert set(only) == {"sua", "mua"} and len(only) < len(labels)
    shutil.copy(d / "cluster_group.tsv", d / "cluster_KSLabel.tsv")
    (d / "cluster_KSLabel.tsv").write_text((d / "cluster_group.tsv").read_text().replace("group", "KSLabel"))
    with pytest.raises(TableError, match="KSLabel"):
        read_phy_labels(d)
    with pytest.raises(TableError, match="LABEL=CLASS"):
        parse_label_map(["good"])


def test_training_input_errors_name_the_problem(features0):
    frame, _ = features0
    with pytest.raises(TrainingError, match="match"):
        training_set(frame, pd.Series({9999: "good", 9998: "other"}))
    few = pd.Series({c: ("good" if c < 3 else "other") for c in frame.index})
    with pytest.raises(TrainingError, match="good=3"):
        training_set(frame, few)
    with pytest.raises(TrainingError, match="two classes"):
        training_set(frame, pd.Series("good", index=frame.index))


# ---------------------------------------------------------------- training


def test_model_trained_on_one_session_transfers_to_another(session0, session1, features0, features1, tmp_path):
    result = search(features0[0], truth_labels(session0), **FAST)
    assert result.scores.iloc[0]["balanced_accuracy"] == result.scores["balanced_accuracy"].max()
    assert {"balanced_accuracy", "precision", "recall", "best_params"} <= set(result.scores.columns)
    pred, _ = predict(_model(result), features1[0])
    truth = truth_labels(session1).loc[pred.index]
    ba = balanced_accuracy_score(truth, pred["prediction"])
    assert ba >= 0.7, ba  # chance is 0.5; measured value is in docs/benchmarks/unitrefine.md
    # written folder is a UnitRefine folder that loads back and predicts the same
    wf.save_search(result, tmp_path / "model")
    for name in ("best_model.skops", "model_info.json", "model_accuracies.csv", "training_data.csv",
                 "labels.csv", "training_report.md"):
        assert (tmp_path / "model" / name).is_file(), name
    again, _ = predict(load_model(tmp_path / "model"), features1[0])
    assert again["prediction"].tolist() == pred["prediction"].tolist()
    assert "Confusion matrix" in (tmp_path / "model" / "training_report.md").read_text()
    assert zipfile.is_zipfile(tmp_path / "model" / "best_model.skops")
    assert list(pd.read_csv(tmp_path / "model" / "labels.csv").columns) == ["unit_index", "0"]


def test_leave_one_session_out_and_fast_refit(session0, session1, features0, features1):
    feats = pd.concat([features0[0], features1[0].set_axis(features1[0].index + 1000)])
    labels = pd.concat([truth_labels(session0), truth_labels(session1).set_axis(truth_labels(session1).index + 1000)])
    sessions = pd.Series(np.where(feats.index < 1000, "s0", "s1"), index=feats.index)
    result = search(feats, labels, sessions=sessions, **FAST)
    assert result.loso["held_out_session"].tolist() == ["s0", "s1", "mean"]
    assert result.loso["balanced_accuracy"].between(0, 1).all()
    # fast refit keeps pipeline and classes, learns from the changed labels
    flipped = labels.copy()
    flipped.iloc[:10] = np.where(flipped.iloc[:10] == "good", "other", "good")
    new, frame, codes = refit(result.pipeline, feats, flipped, result.label_conversion)
    assert type(new.steps[-1][1]) is type(result.pipeline.steps[-1][1])
    assert list(new.feature_names_in_) == list(result.pipeline.feature_names_in_)
    assert new is not result.pipeline
    with pytest.raises(TrainingError, match="not classes"):
        refit(result.pipeline, feats, labels.replace("good", "sua"), result.label_conversion)


def test_every_pipeline_the_search_builds_loads_without_trust(tmp_path):
    from phy_plugins.unitrefine.model_io import save_model
    from phy_plugins.unitrefine.train import CLASSIFIERS, FULL_GRID

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    x.iloc[0, 0] = np.nan
    y = pd.Series(rng.integers(0, 3, 60))
    for clf in CLASSIFIERS:
        for imp in ("median", "knn"):
            params = dict(FULL_GRID[clf][0])
            params.update({"max_iter": 20} if clf == "MLPClassifier" else {})
            params.update({"n_estimators": 10} if "n_estimators" in params else {})
            pipe = make_pipeline(imp, "robust_scaler", clf, params).fit(x, y)
            folder = save_model(tmp_path / f"{clf}-{imp}", pipe, label_conversion={0: "good", 1: "mua", 2: "noise"})
            pred, _ = predict(load_model(folder), x)
            assert set(pred["prediction"]) <= {"good", "mua", "noise"}


def test_plugin_state_plans_labels_and_order():
    from phy_plugins.unitrefine.curation import PredictionStore, phy_group_for, training_labels

    store = PredictionStore()
    pred = pd.DataFrame({"prediction": ["good", "noise", "neural", 1, "sua"],
                         "confidence": [0.95, 0.6, 0.99, 0.9, 0.8]}, index=[1, 2, 3, 4, 5])
    store.update(pred)
    assert store.label(4) == "1" and store.confidence(2) == 0.6 and store.confidence(99) is None
    assert store.plan_labels([1, 2, 3, 4, 5], 0.7) == {"good": [1, 5]}  # 'neural' and 1 have no phy group
    assert store.plan_labels([1, 2, 3, 4, 5], 0.7, {"1": "good", "neural": "mua"}) == {"good": [1, 4, 5],
                                                                                      "mua": [3]}
    assert store.least_confident([5, 1, 99, 2]) == [2, 5, 1, 99]
    assert phy_group_for("SUA") == "good" and phy_group_for("x", {"x": "bogus"}) is None
    labels = training_labels({1: "good", 2: None, 3: "unsorted", 4: "noise", 5: "mua"}, {"good": "g", "mua": "o"})
    assert labels.to_dict() == {1: "g", 5: "o"}


# ---------------------------------------------------------------- amplitudes from the raw traces


def test_raw_amplitudes_are_the_filtered_trace_at_the_spike_peak(session0):
    from scipy.signal import butter, sosfiltfilt

    from phy_plugins.core.kilosort import load_arrays
    from phy_plugins.unitrefine.raw_amplitudes import amplitudes_at, cluster_amplitudes, peak_reference

    # hand-made mean waveform: largest |value| on channel 2, 3 samples after the spike time
    tpl = np.zeros((10, 4))
    tpl[5, 1], tpl[7, 2], tpl[6, 2] = -5.0, 9.0, -8.0
    assert peak_reference(tpl, n_before=4) == (2, 3)
    # unfiltered: exactly the samples asked for, times the gain, clipped to the file
    raw = np.arange(40, dtype=np.int16).reshape(10, 4)
    got = amplitudes_at(raw, np.array([3, 0, 9, 12]), np.array([1, 3, 0, 2]), 0.5, 30000.0, highpass=False)
    assert got.tolist() == [6.5, 1.5, 18.0, 19.0]
    # filtered: the whole channel filtered at once, read at the spike's peak sample
    arr = load_arrays(session0)
    traces, fs = arr.traces(), arr.sample_rate
    st = np.asarray(arr.spike_times)
    rng = np.random.default_rng(1)
    picks = np.sort(rng.choice(len(st), 6, replace=False))
    chans = rng.integers(0, traces.shape[1], 6)
    got = amplitudes_at(traces, st[picks], chans, 0.2, fs, highpass=True, chunk_samples=50_000)
    sos = butter(5, 300.0, btype="highpass", fs=fs, output="sos")
    for t, c, g in zip(st[picks], chans, got):
        full = sosfiltfilt(sos, np.asarray(traces[:, c], float)) * 0.2
        assert g == pytest.approx(full[t], abs=1e-3 * np.abs(full).max())
    # per cluster: the main channel and shift of the mean waveform, the values at the shifted times
    clusters = np.asarray(arr.spike_clusters)
    idx = np.flatnonzero(clusters == clusters[0])
    amps = cluster_amplitudes(traces, st, {0: idx}, 1.0, fs, highpass=False)[0]
    n_before = int(1e-3 * fs)
    mean = np.mean([traces[t - n_before: t + 2 * n_before].astype(float) for t in st[idx[5:-5]]], axis=0)
    channel, shift = peak_reference(mean, n_before)
    assert np.array_equal(amps[5:15], traces[st[idx[5:15]] + shift, channel].astype(float))
    assert abs(np.median(amps)) > 5 * np.median(np.abs(traces[:30000, channel]))  # a spike, not noise


def test_raw_amplitudes_do_not_depend_on_chunk_boundaries(session0):
    from phy_plugins.core.kilosort import load_arrays
    from phy_plugins.unitrefine.raw_amplitudes import amplitudes_at

    arr = load_arrays(session0)
    traces = arr.traces()
    st = np.asarray(arr.spike_times)
    chans = np.random.default_rng(0).integers(0, traces.shape[1], len(st))
    one = amplitudes_at(traces, st, chans, 1.0, arr.sample_rate, highpass=True, chunk_samples=traces.shape[0])
    many = amplitudes_at(traces, st, chans, 1.0, arr.sample_rate, highpass=True, chunk_samples=7_001)
    assert np.sum((st % 7_001 < 30) | (st % 7_001 > 6_970)) > 50  # many spikes sit next to a boundary
    np.testing.assert_allclose(many, one, atol=1e-3 * np.abs(one).max())
    unfiltered = amplitudes_at(traces, st, chans, 1.0, arr.sample_rate, highpass=False, chunk_samples=7_001)
    assert np.array_equal(unfiltered, traces[st, chans].astype(np.float32))


def test_amplitude_metrics_from_kilosort_by_default_raw_traces_opt_in(session0, features0, tmp_path):
    from phy_plugins.unitrefine.metrics_amplitude import AMPLITUDE_METRICS

    frame, report = features0  # default: Kilosort's amplitudes, even with a raw file (no full-file read)
    assert set(AMPLITUDE_METRICS) <= set(report.approximate) and not report.sources
    raw, report = compute_features(session0, names=list(AMPLITUDE_METRICS), raw_amplitudes=True)
    assert "raw traces" in report.sources["amplitude_median"]
    assert not set(AMPLITUDE_METRICS) & set(report.approximate)
    assert raw["amplitude_median"].notna().all()
    assert not np.allclose(raw["amplitude_median"], frame.loc[raw.index, "amplitude_median"])
    noraw = tmp_path / "noraw"
    shutil.copytree(session0, noraw, ignore=shutil.ignore_patterns("recording.dat"))
    ks, report = compute_features(noraw, names=list(AMPLITUDE_METRICS), raw_amplitudes=True)  # no file: fallback
    assert set(report.approximate) == set(AMPLITUDE_METRICS) and not report.sources
    assert "Kilosort amplitudes" in report.approximate["amplitude_cv_median"]
    assert any("approximate amplitude_cv_range: Kilosort" in line for line in report.lines())
    np.testing.assert_allclose(ks["amplitude_median"], frame.loc[ks.index, "amplitude_median"])
    (noraw / "amplitudes.npy").unlink()
    ks, report = compute_features(noraw, names=["amplitude_median"])
    assert ks["amplitude_median"].isna().all() and "amplitudes.npy" in report.unavailable["amplitude_median"]
