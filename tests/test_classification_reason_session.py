"""What the phy plugin shows, tested without Qt: columns, ``:reason`` query, view content."""

from __future__ import annotations

import numpy as np

from phy_plugins.classification_reason.columns import CLASS_FIELD, N_FAILED_FIELD, REASON_FIELD, RULE_FIELD
from phy_plugins.classification_reason.engine import NOT_IN_RUN
from phy_plugins.classification_reason.session import MATCH_FIELD, ReasonSession, spike_counts_of


def _session(ks):
    counts = spike_counts_of(np.load(ks / "spike_clusters.npy"))
    return ReasonSession.from_folder(ks, counts), counts


def test_columns_and_new_ids(synthetic_ks_session):
    s, counts = _session(synthetic_ks_session)
    ev = s.ev
    for cid in counts:
        i = ev.row_of[cid]
        assert s.value(REASON_FIELD, cid) == ev.main_reason[i]
        assert s.value(CLASS_FIELD, cid) == ev.main_reason[i].split(":")[0]
    mua = next(c for c in counts if s.value(REASON_FIELD, c).startswith("MUA: fractionRPVs"))
    assert s.value(RULE_FIELD, mua) == "maxRPVviolations" and s.value(N_FAILED_FIELD, mua) >= 1
    new = max(counts) + 1
    assert s.value(REASON_FIELD, new).startswith(NOT_IN_RUN) and s.value(CLASS_FIELD, new) == NOT_IN_RUN
    assert "bombcell never saw" in s.view_content(new).lines[0]


def test_query_is_case_insensitive_and_dash_tolerant(synthetic_ks_session):
    s, counts = _session(synthetic_ks_session)
    ids = sorted(counts)
    assert s.value(MATCH_FIELD, ids[0]) is None  # no query: blank column
    nonsoma = s.set_query(["non_soma:"], ids)
    assert nonsoma and all(s.reason(c).startswith("NON-SOMA:") for c in nonsoma)
    assert all(s.value(MATCH_FIELD, c) == (1 if c in nonsoma else 0) for c in ids)
    assert s.set_query(["PASSED", "all"], ids) == [c for c in ids if "passed all" in s.reason(c)]
    assert s.set_query([0.1], ids) == []  # numbers from phy's snippet parser are accepted
    assert s.set_query([], ids) == [] and s.query is None and s.value(MATCH_FIELD, ids[0]) is None


def test_reused_id_with_new_spike_count_is_flagged(synthetic_ks_session):
    s, counts = _session(synthetic_ks_session)
    cid = next(iter(counts))
    s.refresh_cluster(cid, counts[cid] + 5)
    assert s.value(CLASS_FIELD, cid) == NOT_IN_RUN and "spike count changed" in s.reason(cid)


def test_exported_tsv_fallback(tmp_path):
    s = ReasonSession.from_folder(tmp_path, {1: 10, 2: 10}, exported={1: "MUA: nSpikes<minNumSpikes"})
    assert s.ev is None and "bombcell folder not found" in s.notes[0]
    assert s.value(REASON_FIELD, 1) == "MUA: nSpikes<minNumSpikes" and s.value(CLASS_FIELD, 1) == "MUA"
    assert s.value(REASON_FIELD, 2).startswith(NOT_IN_RUN)
    assert "rule details need the bombcell folder" in s.view_content(1).lines
    nothing = ReasonSession.from_folder(tmp_path, {1: 10})
    assert nothing.value(REASON_FIELD, 1) is None  # nothing loaded: the column stays blank
