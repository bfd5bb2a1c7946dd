"""``phy-plugins live-detect`` on the generated dataset: events, cluster matching, safe writing."""

from __future__ import annotations

import json

import numpy as np

from phy_plugins.cli import main
from phy_plugins.live_detect.folder import detect_folder


def test_cli_writes_events_matched_to_the_sorting(synthetic_ks, capsys):
    out = synthetic_ks / "live_detect" / "events.npy"
    tsv_before = sorted(p.name for p in synthetic_ks.glob("*.tsv"))
    assert main(["live-detect", str(synthetic_ks), "--duration", "10", "-k", "5"]) == 0
    ev = np.load(out)
    assert set(ev.dtype.names) >= {"sample_index", "channel", "amplitude", "cluster"}
    assert len(ev) > 50 and np.all(np.diff(ev["sample_index"]) >= 0) and ev["sample_index"].max() < 10 * 30000
    # most events belong to sorted units, and the large sorted units are found
    assert (ev["cluster"] >= 0).mean() > 0.8
    text = capsys.readouterr().out
    assert "matched to sorted clusters" in text and "wrote" in text
    # same result as the pure function; nothing else in the folder changed
    res = detect_folder(synthetic_ks, duration_s=10, auto_k_sigma=5.0)
    np.testing.assert_array_equal(res.events.peak_index, ev["sample_index"])
    assert sorted(p.name for p in synthetic_ks.glob("*.tsv")) == tsv_before
    # refuses to overwrite, and refuses a top-level .csv that phy would load as metadata
    assert main(["live-detect", str(synthetic_ks), "--duration", "1"]) == 2
    assert main(["live-detect", str(synthetic_ks), "--duration", "1", "-o", str(synthetic_ks / "ev.csv")]) == 2
    csv = synthetic_ks / "live_detect" / "ev.csv"
    assert main(["live-detect", str(synthetic_ks), "--duration", "2", "-o", str(csv)]) == 0
    rows = csv.read_text().splitlines()
    assert rows[0].startswith("sample_index,time_s,channel") and len(rows) > 5


def test_recall_of_large_ground_truth_units(synthetic_ks_session):
    """Good units of the generated dataset are found by the detector (sorted spikes within 0.5 ms)."""
    gt = json.loads((synthetic_ks_session / "ground_truth.json").read_text())
    res = detect_folder(synthetic_ks_session, duration_s=20)
    good = [int(c) for c, v in gt["clusters"].items() if v["kind"] == "good"]
    found = [res.recall[c] for c in good if c in res.recall and res.recall[c][1] >= 20]
    assert len(found) >= 3, "too few good units with spikes in the first 20 s"
    frac = sum(f for f, _ in found) / sum(t for _, t in found)
    assert frac > 0.8


def test_missing_raw_data_gives_a_clear_error(synthetic_ks, capsys):
    (synthetic_ks / "recording.dat").unlink()
    assert main(["live-detect", str(synthetic_ks)]) == 1
    assert "raw data file not found" in capsys.readouterr().err
