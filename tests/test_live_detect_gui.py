"""The live detection dock inside a real phy GUI (offscreen): replay, events, markers, shutdown."""

from __future__ import annotations

import json

import numpy as np

from phy_plugins.core.phy_session import process_events, wait_until

PLUGIN = "PhyPluginsLiveDetectPlugin"


def test_view_replays_detects_and_stops_with_the_gui(synthetic_ks, phy_gui, qtbot):
    from phy_plugins.live_detect.view import LiveDetectView

    controller, gui = phy_gui(synthetic_ks, plugins=[PLUGIN])
    assert "LiveDetectView" in controller.view_creator
    gui.view_actions.get("Add LiveDetectView").trigger()  # what View > Add LiveDetectView does
    view = gui.get_view("LiveDetectView")
    assert isinstance(view, LiveDetectView) and view.dock is not None

    cid = int(controller.supervisor.clustering.cluster_ids[0])
    controller.supervisor.select([cid])
    assert wait_until(lambda: view.auto_channels == [controller.get_best_channel(cid)], 10)
    view.k_sigma.setValue(5.0)  # control -> settings store
    assert view.store.get().auto_k_sigma == 5.0

    view.start()
    assert view.is_running
    process_events(1.0)  # one second of real-time replay (the 0.5 s noise window comes first)
    assert wait_until(lambda: view.n_received > 0 and len(view.waveforms) > 0, 10)
    assert view.frames >= 2  # the redraw timer runs (its rate is measured in benchmarks)
    mx, my = view.marker_matched.getData()
    ux, uy = view.marker_unmatched.getData()
    assert len(mx) + len(ux) > 0  # event markers drawn on the trace
    x, y = view.wave_curve.getData()
    assert np.isfinite(y).sum() >= view.waveforms[0].samples.size  # waveform overlay drawn
    stats = view.session.stats()
    assert stats.events >= view.n_received and stats.running
    assert "events" in view.status_label.text() and "cluster" in view.recall_label.text()
    # the detected events agree with the sorting: most are matched to a sorted cluster
    assert np.mean([e.cluster >= 0 for e in view.events]) > 0.5

    session, task = view.session, view.task
    gui.close()
    assert wait_until(lambda: task._done.is_set(), 5)
    assert session.stopped and not session.stats().running
    state = json.loads((controller.config_dir / "TemplateGUI" / "state.json").read_text())
    assert state["LiveDetectView"]["auto_k_sigma"] == 5.0
    assert state["view_count"]["LiveDetectView"] == 1


def test_view_without_raw_data_explains_and_cannot_start(qtbot):
    from phy_plugins.live_detect.view import LiveDetectView, ViewContext

    view = LiveDetectView(ViewContext(traces=None, sample_rate=30000.0, channel_positions=None, n_channels=4))
    qtbot.addWidget(view)
    assert not view.start_button.isEnabled() and "no raw data" in view.status_label.text()
    view.start()
    assert view.session is None
    view.set_state({"polarity": "sideways", "auto_k_sigma": "x"})  # ignored, nothing breaks
    assert view.store.get().polarity == "neg"
