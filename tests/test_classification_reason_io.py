"""bombcell folders on disk: loading, export CLI, audit report, bad input, real data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phy_plugins.classification_reason import cli
from phy_plugins.classification_reason.columns import REASON_FIELD
from phy_plugins.classification_reason.engine import CANDIDATES, NOT_IN_RUN
from phy_plugins.classification_reason.export import evaluate_folder, export_reasons
from phy_plugins.classification_reason.loading import BombcellOutputError, load_bombcell_run
from phy_plugins.classification_reason.report import FIGURES, audit_tables, write_report
from phy_plugins.core.tsv import read_cluster_tsv, write_cluster_tsv

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TOY = SHARED / "data" / "bombcell_toy_kilosort"

QM = "templates._bc_qMetrics"
PARAM = "_bc_parameters._bc_qMetrics"


def copy_ks(src: Path, dst: Path) -> Path:
    """Copy a dataset without its raw file (not needed here)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("recording.dat", ".phy"))
    return dst


def _reason_class(reason: str) -> str:
    return reason.split(":", 1)[0]


def test_designed_units_get_the_reasons_they_were_built_for(synthetic_ks_session):
    from phy_plugins.core.synthetic import load_ground_truth

    ev = evaluate_folder(synthetic_ks_session)
    gt = load_ground_truth(synthetic_ks_session)["clusters"]
    names = [c.name for c in CANDIDATES]
    checked = 0
    for cid, info in gt.items():
        i = ev.row_of[int(cid)]
        assert ev.status[i] == "ok", ev.main_reason[i]
        assert ev.label[i] == info["expected_label"], (cid, info, ev.all_reasons[i])
        assert _reason_class(ev.main_reason[i]) == info["expected_label"]
        rule = info["designed_rule"]
        if rule:
            failed = [names[k] for k in np.flatnonzero(ev.candidate_fails[i])]
            assert rule in failed, (cid, rule, ev.all_reasons[i])
            assert rule in ev.all_reasons[i]
            checked += 1
    assert checked >= 6  # MUA, NOISE and NON-SOMA designs all present


def test_parquet_and_csv_give_the_same_reasons(synthetic_ks):
    bc = synthetic_ks / "bombcell"
    ev_parquet = evaluate_folder(synthetic_ks)
    (bc / f"{QM}.parquet").unlink()
    (bc / f"{PARAM}.parquet").unlink()
    ev_csv = evaluate_folder(synthetic_ks)
    assert any(n.endswith(f"{QM}.csv") for n in ev_csv.notes)
    np.testing.assert_array_equal(ev_csv.cluster_ids, ev_parquet.cluster_ids)
    np.testing.assert_array_equal(ev_csv.main_reason, ev_parquet.main_reason)
    np.testing.assert_array_equal(ev_csv.all_reasons, ev_parquet.all_reasons)
    assert (ev_csv.status == "ok").all()


def test_export_is_keyed_on_cluster_id_not_row(synthetic_ks, capsys):
    expected = dict(zip(evaluate_folder(synthetic_ks).cluster_ids.tolist(),
                        evaluate_folder(synthetic_ks).main_reason.tolist(), strict=True))
    bc = synthetic_ks / "bombcell"
    qm = pd.read_parquet(bc / f"{QM}.parquet")
    qm.sample(frac=1.0, random_state=1).reset_index(drop=True).to_parquet(bc / f"{QM}.parquet")
    assert cli.main(["reasons", str(synthetic_ks)]) == 0
    out = capsys.readouterr().out
    assert "Label distribution:" in out and "cluster_bc_classificationReason.tsv" in out
    got = read_cluster_tsv(synthetic_ks, REASON_FIELD)
    assert got == expected
    header = (synthetic_ks / f"cluster_{REASON_FIELD}.tsv").read_text().splitlines()[0]
    assert header == f"cluster_id\t{REASON_FIELD}"


def test_batch_with_glob_keeps_going_past_a_bad_folder(synthetic_ks_session, tmp_path, capsys):
    good_a = copy_ks(synthetic_ks_session, tmp_path / "session1" / "probeA")
    good_b = copy_ks(synthetic_ks_session, tmp_path / "session1" / "probeB")
    bad = copy_ks(synthetic_ks_session, tmp_path / "session1" / "probeC")
    shutil.rmtree(bad / "bombcell")
    write_cluster_tsv(bad, REASON_FIELD, {0: "user value"})
    code = cli.main(["reasons", str(tmp_path / "session1" / "probe*")])
    assert code == 1
    cap = capsys.readouterr()
    assert "bombcell folder not found" in cap.err and "1 of 3 folder(s) failed" in cap.err
    for d in (good_a, good_b):
        assert len(read_cluster_tsv(d, REASON_FIELD)) == 27
    assert read_cluster_tsv(bad, REASON_FIELD) == {0: "user value"}  # untouched


def test_clusters_not_in_the_bombcell_run_are_flagged(synthetic_ks):
    sc_path = synthetic_ks / "spike_clusters.npy"
    sc = np.load(sc_path)
    new_id = int(sc.max()) + 1
    sc[np.isin(sc, [0, 1])] = new_id  # a merge done in phy after bombcell ran
    np.save(sc_path, sc)
    res = export_reasons(synthetic_ks)
    got = read_cluster_tsv(synthetic_ks, REASON_FIELD)
    assert got[new_id].startswith(NOT_IN_RUN)
    assert res.n_not_in_run == 1
    # ids 0 and 1 still have their bombcell reason (bombcell saw them), the rest untouched
    assert got[5] == "GOOD: passed all thresholds"


def test_missing_folder_and_tables_give_clear_errors(tmp_path):
    with pytest.raises(BombcellOutputError, match="bombcell folder not found"):
        load_bombcell_run(tmp_path / "nope")
    (tmp_path / "bc").mkdir()
    with pytest.raises(BombcellOutputError, match="not a bombcell output folder"):
        load_bombcell_run(tmp_path / "bc")
    (tmp_path / "bc" / f"{QM}.parquet").write_bytes(b"not a parquet")
    with pytest.raises(BombcellOutputError, match="cannot read"):
        load_bombcell_run(tmp_path / "bc")


def test_missing_param_file_reports_rules_not_evaluated(synthetic_ks, capsys):
    bc = synthetic_ks / "bombcell"
    for ext in (".parquet", ".csv"):
        (bc / f"{PARAM}{ext}").unlink()
    assert cli.main(["reasons", str(synthetic_ks)]) == 0
    err = capsys.readouterr().err
    assert "threshold rules not evaluated" in err
    got = read_cluster_tsv(synthetic_ks, REASON_FIELD)
    ev = load_bombcell_run(bc).evaluate()
    for i, cid in enumerate(ev.cluster_ids.tolist()):
        saved = ev.saved_label[i]
        # never an invented reason: either the rules that ran explain it, or it says it cannot
        assert _reason_class(got[cid]) == (saved or "EMPTY")
        if saved != "GOOD" and ev.status[i] != "ok":
            assert "reason not determined" in got[cid]


def test_older_bombcell_outputs_are_handled(synthetic_ks):
    bc = synthetic_ks / "bombcell"
    qm = pd.read_parquet(bc / f"{QM}.parquet").drop(columns=["RPV_status", "presenceRatio"])
    qm.to_parquet(bc / f"{QM}.parquet")
    par = pd.read_parquet(bc / f"{PARAM}.parquet").drop(columns=["keepUncertainRPVUnits", "maxNPeaks"])
    par.to_parquet(bc / f"{PARAM}.parquet")
    ev = evaluate_folder(synthetic_ks)
    text = " ".join(ev.notes)
    assert "no RPV_status column" in text and "back-compatibility" in text
    assert "nPeaks>maxNPeaks" in ev.missing_rules and "presenceRatio<minPresenceRatio" in ev.missing_rules
    for i in range(len(ev)):
        assert _reason_class(ev.main_reason[i]) in (ev.saved_label[i], "GOOD")


def test_label_mismatch_is_reported_by_cli(synthetic_ks, capsys):
    bc = synthetic_ks / "bombcell"
    qm = pd.read_parquet(bc / f"{QM}.parquet")
    qm.loc[qm["phy_clusterID"] == 0, "bc_unitType"] = "NOISE"  # as if another version labelled it
    qm.to_parquet(bc / f"{QM}.parquet")
    assert cli.main(["reasons", str(synthetic_ks)]) == 0
    assert "differs from bombcell's saved label" in capsys.readouterr().err
    assert read_cluster_tsv(synthetic_ks, REASON_FIELD)[0].startswith("MISMATCH: bombcell saved 'NOISE'")


def test_audit_report(synthetic_ks, tmp_path):
    ev = evaluate_folder(synthetic_ks)
    out = tmp_path / "report"
    assert cli.main(["reasons-report", str(synthetic_ks), "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    for name, _, _ in FIGURES:
        png = (out / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG")
    assert html.count("data:image/png;base64,") == len(FIGURES)
    assert "src='http" not in html and 'src="http' not in html
    audit = pd.read_csv(out / "reasons_audit.csv")
    assert len(audit) == len(ev)
    # the tables behind the plots agree with the per-unit reason strings
    t = audit_tables(ev)
    for k, cand in enumerate(CANDIDATES):
        n_text = sum(f"{cand.block}: {cand.name} (" in r or (cand.rules == (0,) and "nPeaks is NaN" in r)
                     for r in ev.all_reasons.tolist())
        assert t.reason_counts[k] == n_text
    assert t.class_counts.sum() == len(ev)
    assert np.array_equal(np.diag(t.cooccurrence), t.reason_counts)


def test_report_survives_a_run_without_failures(synthetic_ks, tmp_path):
    run = load_bombcell_run(synthetic_ks / "bombcell")
    keep = run.saved_labels == "GOOD"
    run.metrics, run.cluster_ids, run.saved_labels = run.metrics[keep], run.cluster_ids[keep], run.saved_labels[keep]
    ev = run.evaluate()
    assert not ev.candidate_fails.any()
    path = write_report(ev, tmp_path / "r")
    assert path.read_text().count("data:image/png;base64,") == len(FIGURES)


@pytest.mark.skipif(not TOY.is_dir(), reason="needs ../shared/data/bombcell_toy_kilosort")
def test_real_kilosort_output_every_reason_matches_bombcell(tmp_path):
    from phy_plugins.core.bombcell_run import run_bombcell
    from phy_plugins.core.kilosort import write_params_py

    ks = tmp_path / "toy"
    shutil.copytree(TOY, ks)
    for p in ks.iterdir():
        p.chmod(0o644)
    write_params_py(ks, n_channels_dat=385, dat_path="absent.bin", sample_rate=30000.0)
    run_bombcell(ks, raw=False)
    res = export_reasons(ks)
    reasons = read_cluster_tsv(ks, REASON_FIELD)
    qm = pd.read_parquet(ks / "bombcell" / f"{QM}.parquet")
    assert len(qm) > 0 and res.n_mismatch == 0
    for cid, saved in zip(qm["phy_clusterID"].astype(int), qm["bc_unitType"], strict=True):
        assert _reason_class(reasons[cid]) == (saved or "EMPTY"), (cid, saved, reasons[cid])
