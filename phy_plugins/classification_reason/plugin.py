"""phy plugin: bombcell reason columns, ``:reason TEXT`` filter, reason view, export/report actions.

Wiring only; the logic is in :mod:`.session` (columns, query, view content) and the engine.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from phy import IPlugin
from phylib.utils import connect, unconnect

from ..core.phy_safety import isolated, status
from ..core.settings import plugin_settings
from .columns import REASON_FIELD
from .session import MATCH_FIELD, PHY_FIELDS, ReasonSession, spike_counts_of

logger = logging.getLogger("phy")
SECTION = "classification_reason"
VIEW_NAME = "BombcellReasonView"


class PhyPluginsBombcellReasonPlugin(IPlugin):
    """Why bombcell labelled each unit, in phy's cluster view and a dockable view."""

    session: ReasonSession | None = None

    @isolated
    def attach_to_controller(self, controller) -> None:
        self.controller = controller
        self._tasks: list = []
        model = controller.model
        metadata = getattr(model, "metadata", {}) or {}
        # Exported TSVs of our fields would hide the live columns and be inherited by merged
        # clusters: read them as a fallback only. phy will not rewrite them (not in cluster_meta).
        loaded = {f: metadata.pop(f) for f in PHY_FIELDS if f in metadata}
        settings = plugin_settings(SECTION, getattr(controller, "config_dir", None))
        self.session = ReasonSession.from_folder(
            Path(controller.dir_path), spike_counts_of(model.spike_clusters),
            settings.get("bombcell_dir"), loaded.get(REASON_FIELD))
        for note in self.session.notes:
            logger.info("bombcell reasons: %s", note)
        for f in PHY_FIELDS:
            controller.cluster_metrics[f] = partial(self._value, f)
        controller.view_creator[VIEW_NAME] = self._create_view
        controller.at_least_one_view(VIEW_NAME)

        @connect(sender=controller)
        @isolated
        def on_gui_ready(sender, gui):
            self._on_gui_ready(gui)

    def _value(self, field: str, cluster_id: int) -> object:
        """phy column lookup; never raises (phy would stop building the table)."""
        try:
            return self.session.value(field, cluster_id)
        except Exception as exc:  # noqa: BLE001
            logger.debug("bombcell reason lookup failed for %s: %s", cluster_id, exc)
            return None

    def _create_view(self):
        from .view import BombcellReasonView

        view = BombcellReasonView(self.session, self.controller.supervisor)
        connect(view.on_select, event="select")

        @connect
        @isolated
        def on_close_view(closed, gui):
            if closed is view:
                unconnect(view.on_select, on_close_view)

        sel = self.controller.supervisor.selected
        if sel:
            view.show_cluster(sel[0])
        return view

    def _on_gui_ready(self, gui) -> None:
        from phy.gui import Actions

        self.gui = gui
        actions = Actions(gui, name="BombcellReason", menu="&Bombcell", insert_menu_before="&Help")
        actions.add(isolated(self.filter_by_reason), name="filter_by_reason", alias="reason", prompt=True,
                    docstring="Keep clusters whose bombcell reason contains the text (case-insensitive; "
                              "'_' matches '-'); empty clears. Example: `RPV`")
        actions.add(isolated(self.clear_reason_filter), name="clear_reason_filter")
        actions.separator()
        actions.add(isolated(self.export_tsv), name="export_reasons_tsv",
                    docstring="Write cluster_bc_classificationReason.tsv into the data folder")
        actions.add(isolated(self.write_report), name="write_reasons_report",
                    docstring="Write the audit report (PNG + HTML) to <data>/bombcell_reasons_report")
        self.actions = actions
        status(gui, f"bombcell reasons: {self.session.source}")

    # actions ----------------------------------------------------------------------------------

    def filter_by_reason(self, *words) -> list[int]:
        """``:reason TEXT`` keeps clusters whose reason contains TEXT; ``:reason`` alone clears."""
        sup = self.controller.supervisor
        ids = list(sup.clustering.cluster_ids)
        matches = self.session.set_query(words, ids)
        for table in (sup.cluster_view, sup.similarity_view):
            table.change([{"id": int(c), MATCH_FIELD: self.session.matches(c)} for c in ids])
        if self.session.query is None:
            sup.cluster_view.filter("")
            status(self.gui, "bombcell reason filter cleared")
        else:
            sup.cluster_view.filter(f"{MATCH_FIELD} == 1")
            status(self.gui, f"bombcell reason contains {self.session.query!r}: {len(matches)} cluster(s)")
        return matches

    def clear_reason_filter(self) -> None:
        self.filter_by_reason()

    def export_tsv(self):
        from ..core.tasks import BackgroundTask
        from .export import export_reasons

        def done(res):
            status(self.gui, f"bombcell reasons written to {res.path}")

        task = BackgroundTask(lambda progress: export_reasons(self.controller.dir_path, self._bombcell_dir()),
                              on_result=done, gui=self.gui, name="export bombcell reasons")
        self._tasks.append(task)
        return task

    def write_report(self):
        from ..core.tasks import BackgroundTask
        from .export import evaluate_folder
        from .report import write_report

        out = Path(self.controller.dir_path) / "bombcell_reasons_report"

        def run(progress):
            return write_report(evaluate_folder(self.controller.dir_path, self._bombcell_dir()), out)

        task = BackgroundTask(run, on_result=lambda p: status(self.gui, f"bombcell audit report: {p}"),
                              gui=self.gui, name="bombcell audit report")
        self._tasks.append(task)
        return task

    def _bombcell_dir(self):
        return plugin_settings(SECTION, getattr(self.controller, "config_dir", None)).get("bombcell_dir")
