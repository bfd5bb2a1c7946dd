"""The plugin in a real phy GUI (offscreen): column, sort, reason view, ``:reason`` filter, merges."""

from __future__ import annotations

import shutil

from phy_plugins.classification_reason.columns import CLASS_FIELD, REASON_FIELD
from phy_plugins.classification_reason.engine import NOT_IN_RUN
from phy_plugins.classification_reason.export import evaluate_folder, export_reasons
from phy_plugins.classification_reason.session import MATCH_FIELD
from phy_plugins.core.phy_session import process_events
from phy_plugins.core.tsv import read_cluster_tsv

PLUGIN = "PhyPluginsBombcellReasonPlugin"


def _visible(sup) -> list[int]:
    return list(sup.cluster_view.get_ids())


def _cell(sup, cid, field=REASON_FIELD):
    return sup.cluster_view.get(cid)[field]


def test_column_view_and_reason_filter(synthetic_ks, phy_gui):
    ev = evaluate_folder(synthetic_ks)
    expected = dict(zip(ev.cluster_ids.tolist(), ev.main_reason.tolist(), strict=True))
    assert not (synthetic_ks / f"cluster_{REASON_FIELD}.tsv").exists()  # computed on load, no TSV
    controller, gui = phy_gui(synthetic_ks, plugins=[PLUGIN])
    sup = controller.supervisor
    assert REASON_FIELD in sup.cluster_view.columns and CLASS_FIELD in sup.cluster_view.columns
    all_ids = _visible(sup)
    assert {c: _cell(sup, c) for c in all_ids} == {c: expected[c] for c in all_ids}

    # sorting by the reason column orders rows by the reason text
    sup.cluster_view.sort_by(REASON_FIELD, "asc")
    process_events(0.05)
    reasons = [_cell(sup, c) for c in _visible(sup)]
    assert reasons == sorted(reasons)

    # the reason view follows the selection: an RPV-violating MUA unit
    mua = next(c for c in all_ids if expected[c] == "MUA: fractionRPVs_estimatedTauR>maxRPVviolations")
    sup.select([mua])
    process_events(0.1)
    view = gui.get_view("BombcellReasonView")
    assert view is not None and view.content.cluster_id == mua
    assert expected[mua] in view.title.text()
    rows = {r[1]: r for r in view.row_texts()}
    rpv = rows["fractionRPVs_estimatedTauR>maxRPVviolations"]
    assert rpv[0] == "MUA" and rpv[3] == "0.1" and rpv[4] == "FAIL" and rpv[5].startswith("passes if ≤ 0.1")
    assert rows["nPeaks>maxNPeaks"][4] == "pass" and rows["nPeaks>maxNPeaks"][5].startswith("fails if > 2")
    assert len(view.row_texts()) == 24

    # ':reason RPV' through phy's snippet bar keeps exactly the clusters whose reason contains it
    gui.snippets.run(":reason RPV")
    process_events(0.1)
    want = sorted(c for c in all_ids if "rpv" in expected[c].lower())
    assert 0 < len(want) < len(all_ids)
    assert sorted(_visible(sup)) == want
    assert all(_cell(sup, c, MATCH_FIELD) == 1 for c in want)
    # several words, and '_' standing for '-' (phy's snippet parser reads '-' as a range)
    gui.snippets.run(":reason non_soma: mainPeak")
    process_events(0.1)
    assert sorted(_visible(sup)) == sorted(c for c in all_ids if expected[c].startswith("NON-SOMA: mainPeak"))
    gui.snippets.run(":reason")
    process_events(0.1)
    assert sorted(_visible(sup)) == sorted(all_ids)


def test_merged_cluster_gets_not_in_run_reason_not_an_inherited_one(synthetic_ks, phy_gui):
    export_reasons(synthetic_ks)  # an exported TSV must not leak into merged clusters
    before = read_cluster_tsv(synthetic_ks, REASON_FIELD)
    controller, gui = phy_gui(synthetic_ks, plugins=[PLUGIN])
    sup = controller.supervisor
    a, b = sorted(_visible(sup))[:2]
    sup.merge([a, b])
    process_events(0.2)
    new = max(_visible(sup))
    assert new not in before
    assert _cell(sup, new).startswith(NOT_IN_RUN)
    assert _cell(sup, new, CLASS_FIELD) == NOT_IN_RUN
    sup.select([new])
    process_events(0.1)
    view = gui.get_view("BombcellReasonView")
    assert "bombcell never saw this cluster" in view.details.text()
    # undo brings the original clusters and their bombcell reasons back
    sup.undo()
    process_events(0.2)
    assert _cell(sup, a) == before[a]
    # phy never rewrote our TSV (not part of its cluster metadata)
    assert read_cluster_tsv(synthetic_ks, REASON_FIELD) == before


def test_missing_bombcell_folder_keeps_phy_running(synthetic_ks, phy_gui):
    export_reasons(synthetic_ks)
    exported = read_cluster_tsv(synthetic_ks, REASON_FIELD)
    shutil.rmtree(synthetic_ks / "bombcell")
    controller, gui = phy_gui(synthetic_ks, plugins=[PLUGIN])
    sup = controller.supervisor
    ids = _visible(sup)
    assert ids and all(_cell(sup, c) == exported[c] for c in ids)
    sup.select([ids[0]])
    process_events(0.1)
    view = gui.get_view("BombcellReasonView")
    assert "bombcell folder not found" in view.details.text()
    # the other phy machinery still works
    sup.merge(ids[:2])
    process_events(0.2)
    assert _cell(sup, max(_visible(sup))).startswith(NOT_IN_RUN)
