"""The generated dataset: complete, deterministic, loadable by phylib, labelled as designed by bombcell."""

import json

import numpy as np
import pandas as pd

from phy_plugins.core.kilosort import load_arrays, open_template_model
from phy_plugins.core.synthetic import generate_dataset, load_ground_truth

KS4_FILES = ["params.py", "recording.dat", "spike_times.npy", "spike_clusters.npy", "spike_templates.npy",
             "templates.npy", "amplitudes.npy", "channel_map.npy", "channel_positions.npy", "whitening_mat.npy",
             "whitening_mat_inv.npy", "pc_features.npy", "pc_feature_ind.npy", "template_features.npy",
             "template_feature_ind.npy", "similar_templates.npy", "ground_truth.json"]


def test_folder_is_complete_and_designed(synthetic_ks_session):
    for name in KS4_FILES:
        assert (synthetic_ks_session / name).exists(), name
    gt = load_ground_truth(synthetic_ks_session)
    kinds = [c["kind"] for c in gt["clusters"].values()]
    assert len(kinds) >= 20
    for kind in ("good", "mua", "noise", "non_somatic", "split", "similar"):
        assert kind in kinds, kind
    assert len(gt["true_merges"]) >= 3 and len(gt["true_non_merges"]) >= 3
    for a, b in gt["true_merges"]:
        assert gt["clusters"][str(a)]["neuron"] == gt["clusters"][str(b)]["neuron"]
    for a, b in gt["true_non_merges"]:
        assert gt["clusters"][str(a)]["neuron"] != gt["clusters"][str(b)]["neuron"]


def test_arrays_are_consistent(synthetic_ks_session):
    a = load_arrays(synthetic_ks_session)
    assert a.templates.shape[1:] == (61, 32)
    assert np.all(np.diff(a.spike_times) >= 0)
    assert a.pc_features.shape[0] == len(a.spike_times)
    assert abs(a.duration_s - 60.0) < 1e-6
    traces = a.traces()
    assert traces.shape == (1_800_000, 32) and traces.dtype == np.int16
    # a spike of the largest unit is visible in the raw data on its peak channel
    gt = load_ground_truth(synthetic_ks_session)
    cid = max((int(k) for k, c in gt["clusters"].items() if c["kind"] == "good"),
              key=lambda k: gt["clusters"][str(k)]["amplitude_uv"])
    ch = int(np.argmax(np.abs(a.templates[cid]).max(axis=0)))
    t = a.spike_times[a.spike_clusters == cid][:50]
    trough = traces[t, ch].astype(float) * gt["gain_uv"]
    assert np.median(trough) < -4 * gt["noise_uv"]


def test_phylib_opens_it(synthetic_ks_session):
    model = open_template_model(synthetic_ks_session)
    try:
        assert model.n_channels == 32
        assert len(np.unique(model.spike_clusters)) == len(load_ground_truth(synthetic_ks_session)["clusters"])
        assert model.traces is not None and model.traces.shape[1] == 32
    finally:
        model.close()


def test_bombcell_labels_every_unit_as_designed(synthetic_ks_session):
    gt = load_ground_truth(synthetic_ks_session)["clusters"]
    qm = pd.read_parquet(synthetic_ks_session / "bombcell" / "templates._bc_qMetrics.parquet")
    got = {int(c): lab for c, lab in zip(qm.phy_clusterID, qm.bc_unitType)}
    expected = {int(c): v["expected_label"] for c, v in gt.items()}
    assert got == expected


def test_deterministic_and_seed_dependent(tmp_path):
    a = generate_dataset(tmp_path / "a", seed=3, duration_s=5)
    b = generate_dataset(tmp_path / "b", seed=3, duration_s=5)
    c = generate_dataset(tmp_path / "c", seed=4, duration_s=5)
    for name in ("spike_times.npy", "templates.npy", "pc_features.npy"):
        assert np.array_equal(np.load(a / name), np.load(b / name))
    assert (a / "recording.dat").read_bytes() == (b / "recording.dat").read_bytes()
    assert not np.array_equal(np.load(a / "spike_times.npy"), np.load(c / "spike_times.npy"))
    assert json.loads((a / "ground_truth.json").read_text()) == json.loads((b / "ground_truth.json").read_text())


def test_existing_dataset_is_kept(tmp_path):
    d = generate_dataset(tmp_path / "d", seed=1, duration_s=3)
    (d / "cluster_group.tsv").write_text("cluster_id\tgroup\n0\tgood\n")
    before = (d / "spike_times.npy").stat().st_mtime_ns
    generate_dataset(d, seed=1, duration_s=3)
    assert (d / "spike_times.npy").stat().st_mtime_ns == before
    assert (d / "cluster_group.tsv").exists()


def test_bombcell_command_without_raw(tmp_path, capsys):
    from phy_plugins.cli import main

    d = generate_dataset(tmp_path / "short", seed=5, duration_s=20)
    assert main(["bombcell", str(d), "--no-raw"]) == 0
    assert "bombcell results in" in capsys.readouterr().out
    params = pd.read_parquet(d / "bombcell" / "_bc_parameters._bc_qMetrics.parquet")
    assert not bool(params["extractRaw"].iloc[0])
    assert (d / "cluster_bc_unitType.tsv").exists()
