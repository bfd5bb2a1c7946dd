"""phy wiring of live_detect: registers the ``LiveDetectView`` dock in ``View > Add``."""

from __future__ import annotations

import logging
from typing import Any

from phy import IPlugin
from phylib.utils import connect, unconnect

from ..core.kilosort import read_params
from ..core.phy_safety import isolated
from .matching import ClusterMatcher
from .view import LiveDetectView, ViewContext

logger = logging.getLogger("phy")
VIEW_NAME = "LiveDetectView"  # == the class name, so phy restores it from view_count


def _trace_view_time(gui: Any) -> float:
    view = gui.get_view("TraceView") if gui is not None else None
    return float(view.time) if view is not None and getattr(view, "_interval", None) else 0.0


def _cluster_channels(controller: Any) -> dict[int, int]:
    return {int(c): int(controller.get_best_channel(c)) for c in controller.supervisor.clustering.cluster_ids}


def make_context(controller: Any, view_ref: list) -> ViewContext:
    """Build the view's :class:`ViewContext` from a phy ``TemplateController``."""
    model = controller.model
    try:
        hp_filtered = bool(read_params(model.dir_path).get("hp_filtered", False))
    except Exception:  # noqa: BLE001 - unreadable params: assume raw data and filter
        hp_filtered = False

    def make_matcher() -> ClusterMatcher | None:
        sup = getattr(controller, "supervisor", None)
        if sup is None or model.spike_samples is None:
            return None
        return ClusterMatcher(model.spike_samples, sup.clustering.spike_clusters, _cluster_channels(controller),
                              model.channel_positions, model.sample_rate)

    return ViewContext(
        traces=getattr(model, "traces", None), sample_rate=float(model.sample_rate),
        channel_positions=model.channel_positions, n_channels=int(model.n_channels),
        current_time=lambda: _trace_view_time(view_ref[0].gui if view_ref else None),
        make_matcher=make_matcher, hp_filtered=hp_filtered)


class PhyPluginsLiveDetectPlugin(IPlugin):
    """Adds a live threshold-detection dock view (View > Add LiveDetectView)."""

    def attach_to_controller(self, controller: Any) -> None:
        @isolated
        def create_live_detect_view() -> LiveDetectView:
            ref: list = []
            view = LiveDetectView(make_context(controller, ref))
            ref.append(view)

            @connect
            @isolated
            def on_select(sender: Any, cluster_ids: Any, **kwargs: Any) -> None:
                if sender is not controller.supervisor or not len(cluster_ids):
                    return
                view.set_selection([int(c) for c in cluster_ids], controller.get_best_channel(cluster_ids[0]))

            @connect
            @isolated
            def on_cluster(sender: Any, up: Any) -> None:
                session = view.session
                if session is not None and session.matcher is not None:
                    session.matcher.set_clusters(controller.supervisor.clustering.spike_clusters,
                                                 _cluster_channels(controller))

            @connect
            @isolated
            def on_close_view(view_: Any, gui: Any) -> None:
                if view_ is view:
                    unconnect(on_select, on_cluster, on_close_view)

            return view

        controller.view_creator[VIEW_NAME] = create_live_detect_view
