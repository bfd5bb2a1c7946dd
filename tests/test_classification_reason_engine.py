"""Rules engine: agreement with bombcell's own classifier, and the reason semantics."""

from __future__ import annotations

import contextlib
import io
import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phy_plugins.classification_reason import engine
from phy_plugins.classification_reason.engine import CANDIDATES, EMPTY_TEXT, GOOD_TEXT, MISMATCH, evaluate
from phy_plugins.classification_reason.rules import AND_GROUP_PARAMS, BACKCOMPAT_VALUES, CLEAN_UNIT, RULES, SWITCHES

bc_qm = pytest.importorskip("bombcell.quality_metrics")
bc_defaults = pytest.importorskip("bombcell.default_parameters")

METRICS = sorted({r.metric for r in RULES} | {"nSpikes"})
BASE_PARAM = bc_defaults.get_default_parameters("/nonexistent-ks", kilosort_version=4)


def bombcell_labels(param: dict, metrics) -> np.ndarray:
    """bombcell's own labels (its prints and warnings silenced)."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bc_qm.get_quality_unit_type(dict(param), metrics)[1]


def _threshold_for(metric: str, param: dict) -> float:
    thr = [param[r.param] for r in RULES if r.metric == metric and r.param and r.param in param]
    return float(thr[0]) if thr else 1.0


def random_metrics(rng: np.random.Generator, n: int, param: dict, p_edit: float = 0.06) -> dict[str, np.ndarray]:
    """Clean units with a few metrics moved to NaN, inf, exactly/just past a threshold, or random.

    Most units fail zero to two rules, so each rule (and its gates/exemptions) often decides a label.
    """
    out = {}
    for m in METRICS:
        t = _threshold_for(m, param)
        v = np.full(n, float(CLEAN_UNIT[m]))
        edit = rng.random(n) < p_edit
        kind = rng.integers(0, 7, n)
        choices = [np.full(n, t), np.nextafter(t, np.inf) + 0 * v, np.nextafter(t, -np.inf) + 0 * v,
                   np.full(n, np.nan), np.full(n, np.inf), np.full(n, -np.inf), rng.normal(t, abs(t) + 1.0, n)]
        v = np.where(edit, np.choose(kind, choices), v)
        out[m] = v
    out["rawAmplitude"][rng.random(n) < 0.25] = np.nan  # no raw amplitude: SNR rule skipped too
    grp = rng.random(n) < 0.1  # the whole non-somatic AND group fails
    for m, bad in (("troughToPeak2Ratio", 1), ("mainPeak_before_width", 1), ("mainTrough_width", 1),
                   ("peak1ToPeak2Ratio", 10)):
        out[m] = np.where(grp & (rng.random(n) < 0.9), bad, out[m])
    out["nSpikes"] = np.where(rng.random(n) < 0.2, rng.choice([0, 20, 299, 300, 301, np.nan], n), 2000.0)
    out["RPV_status"] = rng.choice([-1, 0, 1, np.nan], n)
    return out


@pytest.mark.parametrize("switches", list(itertools.product([False, True], repeat=len(SWITCHES))))
def test_every_switch_combination_matches_bombcell(switches):
    rng = np.random.default_rng(abs(hash(switches)) % 2**32)
    param = dict(BASE_PARAM, **dict(zip(SWITCHES, switches, strict=True)))
    metrics = random_metrics(rng, 300, param)
    expected = bombcell_labels(param, metrics)
    ev = evaluate(metrics, param)
    np.testing.assert_array_equal(ev.label, expected)
    # the same through a DataFrame, as read from the parquet
    ev_df = evaluate(pd.DataFrame(metrics), param)
    np.testing.assert_array_equal(ev_df.label, expected)
    np.testing.assert_array_equal(ev_df.main_reason, ev.main_reason)
    # the grouped, vectorised all-reasons text equals the careful per-unit formatting
    assert ev.all_reasons.tolist() == [ev.reasons_of(i) for i in range(len(ev))]
    for i in np.flatnonzero(ev.n_failed > 1):
        if ev.label[i] not in ("", "GOOD"):
            assert ev.main[i] == _furthest(ev, i)


_value = st.one_of(
    st.just("good"),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, "at", "just_above", "just_below"]),
    st.floats(-1e4, 1e4, allow_nan=False),
)


@st.composite
def tables(draw):
    switches = draw(st.tuples(*[st.booleans()] * len(SWITCHES)))
    param = dict(BASE_PARAM, **dict(zip(SWITCHES, switches, strict=True)))
    # older or partial parameter files: bombcell fills them, so must we
    for key in draw(st.lists(st.sampled_from(sorted(BACKCOMPAT_VALUES)), max_size=4, unique=True)):
        param.pop(key, None)
    n = draw(st.integers(1, 12))
    metrics = {}
    for m in METRICS:
        t = _threshold_for(m, param)
        col = []
        for v in draw(st.lists(st.one_of(st.just("good"), st.just("good"), _value), min_size=n, max_size=n)):
            if v == "good":
                v = CLEAN_UNIT.get(m, t)
            elif v == "at":
                v = t
            elif v == "just_above":
                v = np.nextafter(t, np.inf)
            elif v == "just_below":
                v = np.nextafter(t, -np.inf)
            col.append(v)
        metrics[m] = np.array(col, dtype=float)
    if draw(st.booleans()):  # no raw amplitude (e.g. no gain): the SNR rule is skipped too
        metrics["rawAmplitude"][:] = np.nan
    if draw(st.booleans()):  # first unit fails the whole non-somatic AND group
        metrics["troughToPeak2Ratio"][0], metrics["mainPeak_before_width"][0] = 1, 1
        metrics["mainTrough_width"][0], metrics["peak1ToPeak2Ratio"][0] = 1, 10
    metrics["nSpikes"] = np.array(draw(st.lists(st.sampled_from([0.0, 30.0, 299.0, 300.0, 1e4]),
                                                min_size=n, max_size=n)))
    if draw(st.booleans()):
        metrics["RPV_status"] = np.array(draw(st.lists(st.sampled_from([-1.0, 0.0, 1.0]), min_size=n, max_size=n)))
    return param, metrics


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_property_labels_equal_bombcell(table):
    param, metrics = table
    expected = bombcell_labels(param, metrics)
    ev = evaluate(metrics, param, saved_labels=expected)
    np.testing.assert_array_equal(ev.label, expected)
    assert (ev.status == "ok").all()
    # the main reason's class is the label (or EMPTY), and names a rule the unit really failed
    for i in range(len(ev)):
        cls = ev.main_reason[i].split(":", 1)[0]
        assert cls == (expected[i] or "EMPTY")
        if expected[i] not in ("", "GOOD"):
            assert ev.main[i] >= 0 and ev.candidate_fails[i, ev.main[i]]
            assert ev.main[i] == _furthest(ev, i)


def _furthest(ev, i: int) -> int:
    """Reference main-reason choice from the full relative-excess matrix (first wins ties)."""
    block = {"NOISE": "NOISE", "MUA": "MUA"}.get(ev.label[i], "NON-SOMA")
    best, best_k = -np.inf, -1
    for k, cand in enumerate(CANDIDATES):
        if cand.block == block and ev.candidate_fails[i, k]:
            x = min(ev.excess[i, j] for j in cand.rules)
            if x > best:
                best, best_k = x, k
    return best_k


def _one_unit(**over) -> dict[str, np.ndarray]:
    """A clean GOOD unit under the default param, with overrides."""
    good = dict(CLEAN_UNIT, RPV_status=1)
    good.update(over)
    return {k: np.array([v], dtype=float) for k, v in good.items()}


P = dict(BASE_PARAM, extractRaw=True, computeSpatialDecay=True, spDecayLinFit=False)


def _reason(param=P, **over) -> str:
    return evaluate(_one_unit(**over), param).main_reason[0]


def test_reason_strings_use_seed_vocabulary():
    assert _reason() == GOOD_TEXT
    assert _reason(fractionRPVs_estimatedTauR=0.32) == "MUA: fractionRPVs_estimatedTauR>maxRPVviolations"
    assert _reason(nPeaks=4) == "NOISE: nPeaks>maxNPeaks"
    assert _reason(mainPeakToTroughRatio=0.9) == (
        "NON-SOMA: mainPeakToTroughRatio>maxMainPeakToTroughRatio_nonSomatic")
    assert _reason(nSpikes=0) == EMPTY_TEXT
    assert _reason(nPeaks=np.nan).startswith("NOISE: nPeaks is NaN")


def test_strict_comparisons_and_nan_never_fails():
    assert _reason(fractionRPVs_estimatedTauR=P["maxRPVviolations"]) == GOOD_TEXT
    assert _reason(fractionRPVs_estimatedTauR=np.nan, presenceRatio=np.nan) == GOOD_TEXT


def test_main_reason_is_furthest_past_threshold_relative():
    # RPV 0.32 is 220% past 0.1; presence 0.2 is 71% below 0.7 -> RPV wins
    ev = evaluate(_one_unit(fractionRPVs_estimatedTauR=0.32, presenceRatio=0.2), P)
    assert ev.main_reason[0] == "MUA: fractionRPVs_estimatedTauR>maxRPVviolations"
    assert ev.main_key[0] == "maxRPVviolations"
    ev = evaluate(_one_unit(fractionRPVs_estimatedTauR=0.12, presenceRatio=0.2), P)
    assert ev.main_reason[0] == "MUA: presenceRatio<minPresenceRatio"
    assert ev.all_reasons[0] == ("MUA: fractionRPVs_estimatedTauR>maxRPVviolations (0.12>0.1) | "
                                 "MUA: presenceRatio<minPresenceRatio (0.2<0.7)")
    assert ev.n_failed[0] == 2


def test_values_that_print_like_their_threshold_are_shown_in_full():
    ev = evaluate(_one_unit(fractionRPVs_estimatedTauR=np.nextafter(0.1, 1)), P)
    assert ev.label[0] == "MUA"
    assert ev.all_reasons[0] == "MUA: fractionRPVs_estimatedTauR>maxRPVviolations (0.10000000000000002>0.1)"


def test_non_soma_keeps_hidden_mua_failures():
    ev = evaluate(_one_unit(mainPeakToTroughRatio=1.2, nSpikes=100), P)
    assert ev.label[0] == "NON-SOMA"
    assert ev.main_reason[0].startswith("NON-SOMA: mainPeakToTroughRatio")
    assert "MUA: nSpikes<minNumSpikes (100<300)" in ev.all_reasons[0]
    assert ev.block_fails("MUA")[0] == 1 and ev.block_fails("NON-SOMA")[0] == 1
    split = dict(P, splitGoodAndMua_NonSomatic=True)
    ev = evaluate(_one_unit(mainPeakToTroughRatio=1.2, nSpikes=100), split)
    assert ev.label[0] == "NON-SOMA MUA"
    assert ev.main_reason[0].startswith("NON-SOMA MUA: mainPeakToTroughRatio")


def test_and_group_needs_all_four_members():
    members = dict(troughToPeak2Ratio=1, mainPeak_before_width=1, mainTrough_width=1, peak1ToPeak2Ratio=10)
    three = dict(list(members.items())[:3])
    ev = evaluate(_one_unit(**three), P)
    assert ev.label[0] == "GOOD" and ev.all_reasons[0] == ""
    states = {r["rule"]: r["state"] for r in ev.rule_rows(0)}
    assert states["troughToPeak2Ratio<minTroughToPeak2Ratio_nonSomatic"].startswith("member fails")
    assert states["peak1ToPeak2Ratio>maxPeak1ToPeak2Ratio_nonSomatic"] == "pass"
    ev = evaluate(_one_unit(**members), P)
    assert ev.label[0] == "NON-SOMA"
    assert " & " in ev.main_reason[0] and ev.main_key[0] == "nonSomaticAndGroup"


def test_raw_gate_and_uncertain_rpv():
    # rawAmplitude NaN skips the SNR rule too
    assert _reason(rawAmplitude=np.nan, signalToNoiseRatio=1) == GOOD_TEXT
    assert _reason(rawAmplitude=80, signalToNoiseRatio=1) == "MUA: signalToNoiseRatio<minSNR"
    keep = dict(P, keepUncertainRPVUnits=True)
    assert _reason(keep, fractionRPVs_estimatedTauR=0.5, RPV_status=0) == GOOD_TEXT
    assert _reason(keep, fractionRPVs_estimatedTauR=0.5, RPV_status=-1).startswith("MUA")


def test_switched_off_rules_are_not_evaluated():
    off = dict(P, extractRaw=False, computeSpatialDecay=False)
    ev = evaluate(_one_unit(rawAmplitude=5, spatialDecaySlope=-1), off)
    assert ev.label[0] == "GOOD"
    rows = {r["rule"]: r for r in ev.rule_rows(0)}
    assert rows["rawAmplitude<minAmplitude"]["state"] == "not evaluated"
    assert "extractRaw=False" in rows["rawAmplitude<minAmplitude"]["flip"]


def test_rule_rows_show_distance_to_flip():
    ev = evaluate(_one_unit(fractionRPVs_estimatedTauR=0.32), P, cluster_ids=[42])
    rows = {r["rule"]: r for r in ev.rule_rows(42)}
    rpv = rows["fractionRPVs_estimatedTauR>maxRPVviolations"]
    assert rpv["state"] == "FAIL" and rpv["threshold"] == 0.1
    assert "0.22 away" in rpv["flip"] and "220%" in rpv["flip"]
    pr = rows["presenceRatio<minPresenceRatio"]
    assert pr["state"] == "pass" and pr["flip"].startswith("fails if < 0.7")


def test_disagreement_with_saved_label_is_reported_not_explained():
    ev = evaluate(_one_unit(), P, saved_labels=["MUA"])
    assert ev.status[0] == "mismatch"
    assert ev.main_reason[0].startswith(f"{MISMATCH}: bombcell saved 'MUA'")
    assert any("differs" in n for n in ev.notes)


def test_cluster_ids_are_copied_unless_read_only():
    """The caller's cluster ids are shared only when nobody can change them (read-only int64)."""
    metrics = {k: np.repeat(v, 3) for k, v in _one_unit().items()}
    mine = np.array([7, 8, 9])
    ev = evaluate(metrics, P, cluster_ids=mine)
    mine[0] = 99
    assert ev.cluster_ids.tolist() == [7, 8, 9]
    frozen = np.array([7, 8, 9], dtype=np.int64)
    frozen.flags.writeable = False
    assert evaluate(metrics, P, cluster_ids=frozen).cluster_ids is frozen
    assert evaluate(metrics, P, cluster_ids=[1, 2, 3]).cluster_ids.dtype == np.int64
    assert evaluate(metrics, P).cluster_ids.tolist() == [0, 1, 2]


def test_missing_columns_and_params_are_reported():
    metrics = _one_unit(fractionRPVs_estimatedTauR=0.5)
    del metrics["presenceRatio"]
    param = dict(P)
    del param["maxNPeaks"]  # no back-compat value: bombcell raises KeyError here
    ev = evaluate(metrics, param, saved_labels=["MUA"])
    assert ev.label[0] == "MUA" and ev.status[0] == "ok"
    assert "nPeaks>maxNPeaks" in ev.missing_rules and "presenceRatio<minPresenceRatio" in ev.missing_rules
    assert any("not evaluated" in n for n in ev.notes)
    # a unit the missing rules would have decided gets no invented reason
    ev = evaluate(_one_unit(), param, saved_labels=["NOISE"])
    assert ev.status[0] == "undetermined"
    assert ev.main_reason[0].startswith("NOISE: reason not determined") and "nPeaks>maxNPeaks" in ev.main_reason[0]
    ev = evaluate(_one_unit(), param)
    assert ev.main_reason[0].startswith("GOOD: passed all evaluated thresholds")


@pytest.mark.parametrize("drop", [AND_GROUP_PARAMS[:2], AND_GROUP_PARAMS, ("spDecayLinFit",)])
def test_old_param_files_filled_like_bombcell(drop):
    rng = np.random.default_rng(3)
    param = {k: v for k, v in P.items() if k not in drop}
    metrics = random_metrics(rng, 400, P)
    ev = evaluate(metrics, param)
    np.testing.assert_array_equal(ev.label, bombcell_labels(param, metrics))
    assert any("back-compatibility" in n for n in ev.notes)


def test_grouped_3g_texts_equal_python_format():
    rng = np.random.default_rng(7)
    v = np.concatenate([
        rng.uniform(-1e3, 1e3, 20000),
        10.0 ** rng.uniform(-305, 305, 20000) * rng.choice([-1, 1], 20000),
        np.concatenate([np.round(rng.uniform(0, 2000, 4000), k) for k in range(5)]),  # 3-digit ties
        (np.arange(1, 20000) + 0.5) / 1000,
        [d * 10.0 ** e for d in range(100, 1000, 7) for e in range(-8, 8)],
        [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1e-300, 1e300, 1.7976931348623157e308, 999.5, 9.995,
         0.0009995, 99.95, 1e-5, 1e-4, 100, 1000, 0.1, 0.30000000000000004, 1.25, 0.125, 2.5e-5],
    ])
    group, texts, alone = engine._group_by_3g(v)
    expected = np.array([f"{x:.3g}" for x in v.tolist()], dtype=object)
    got = texts.take(group)
    assert not np.any((got != expected) & ~alone)
    assert alone.mean() < 0.05


@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_texts_equal_per_unit_texts(seed):
    """all reasons (values over many magnitudes) and the failed-rule names, against per-unit code."""
    rng = np.random.default_rng(seed)
    param = dict(BASE_PARAM, extractRaw=True, computeDrift=True, computeDistanceMetrics=True)
    metrics = random_metrics(rng, 3000, param, p_edit=0.2)
    for m in ("waveformBaselineFlatness", "maxDriftEstimate", "Lratio", "isolationDistance"):
        metrics[m] = metrics[m] * 10.0 ** rng.integers(-8, 8, 3000)
    ev = evaluate(metrics, param)
    assert ev.all_reasons.tolist() == [ev.reasons_of(i) for i in range(len(ev))]
    names = [" | ".join(f"{c.block}: {engine.NAN_PEAKS_TEXT if RULES[c.rules[0]].op == 'isnan' else c.name}"
                        for k, c in enumerate(CANDIDATES) if ev.candidate_fails[i, k] and not ev.empty[i])
             for i in range(len(ev))]
    assert ev.reason_list.tolist() == names
    for i in np.flatnonzero(ev.n_failed > 1):
        if ev.label[i] not in ("", "GOOD"):
            assert ev.main[i] == _furthest(ev, i)


@pytest.mark.parametrize("n, size", [(5, 1 << 21), (100_000, 1 << 21), (3000, 5000)])
def test_unique_inverse_equals_numpy_unique(n, size):
    codes = np.random.default_rng(n).integers(0, size, n)
    uniq, inverse = engine._unique_inverse(codes, size)
    expected_uniq, expected_inverse = np.unique(codes, return_inverse=True)
    np.testing.assert_array_equal(uniq, expected_uniq)
    np.testing.assert_array_equal(inverse, expected_inverse.reshape(-1))


def test_kernel_chunks_and_input_types():
    """Chunk boundaries do not matter, and every input type runs the one compiled kernel."""
    from phy_plugins.classification_reason import kernel

    param = dict(BASE_PARAM, extractRaw=True, computeDrift=True, computeDistanceMetrics=True,
                 keepUncertainRPVUnits=True)
    metrics = random_metrics(np.random.default_rng(3), 2 * kernel.CHUNK + 7, param, p_edit=0.2)
    ev = evaluate(metrics, param)
    cut = kernel.CHUNK // 2 + 3
    parts = [evaluate({k: v[s] for k, v in metrics.items()}, param) for s in (slice(None, cut), slice(cut, None))]
    for name in ("fails", "fail_bits", "code", "main", "main_reason", "nonsoma_group", "empty"):
        np.testing.assert_array_equal(getattr(ev, name), np.concatenate([getattr(p, name) for p in parts]))
    frame = pd.DataFrame(np.column_stack(list(metrics.values())), columns=list(metrics))  # strided columns
    as_f32 = {k: v.astype(np.float32) for k, v in metrics.items()}
    as_f32["nSpikes"] = np.nan_to_num(metrics["nSpikes"], nan=-1).astype(np.int32)
    for table in (frame, as_f32):
        assert len(evaluate(table, param)) == len(ev)
    np.testing.assert_array_equal(evaluate(frame, param).main_reason, ev.main_reason)
    assert len(kernel.classify.signatures) == 1
