"""phy adapter: AI menu, background runs, the suggestions dock, Accept/Reject, similarity."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from phy import IPlugin
from phylib.utils import connect

from phy_plugins.core.phy_safety import isolated, status
from phy_plugins.core.tasks import BackgroundTask

from . import api, pipeline
from .evidence import SortingData
from .fewshot import FewShotBank
from .results import CSV_NAME, read_results_csv
from .suggestions import ACCEPTED, PENDING, REJECTED, SuggestionList

logger = logging.getLogger("phy")
VIEW_NAME = "PhyPluginsVlmMergeView"
SIMILARITY_NAME = "ai_merge"


def ai_actions(gui):
    """The shared top-level "AI" menu's Actions (get-or-create; other plugins use it too)."""
    from phy.gui import Actions

    for a in getattr(gui, "actions", []):
        if getattr(a, "name", None) == "AI":
            return a
    return Actions(gui, name="AI", menu="&AI", insert_menu_before="&Help")


def sorting_from_controller(controller, spike_clusters: np.ndarray, groups: dict) -> SortingData:
    """SortingData from phy's model and the current clustering (call off the GUI thread)."""
    from phy_plugins.core.kilosort import load_arrays

    m = controller.model
    try:
        templates = load_arrays(m.dir_path).unwhitened_templates()
    except Exception as exc:  # noqa: BLE001 - waveform panel and fallback similarity only
        logger.warning("vlm_merge: templates unavailable (%s)", exc)
        templates = None
    return SortingData(
        spike_times=np.asarray(m.spike_times, dtype=np.float64),
        spike_clusters=np.asarray(spike_clusters, dtype=np.int64),
        spike_templates=np.asarray(m.spike_templates, dtype=np.int64),
        amplitudes=None if m.amplitudes is None else np.asarray(m.amplitudes, dtype=float),
        templates=None if templates is None else np.asarray(templates, dtype=np.float32),
        sample_rate=float(m.sample_rate),
        duration_s=float(m.duration),
        similar_templates=np.asarray(m.similar_templates),
        groups=groups,
    )


def _plan_task(controller, spike_clusters, groups, ks_dir, cfg, progress):
    """Background: build the data, the plan (pairs, cache hits, cost) and, for the VLM, the
    connection (``.env`` read once per run; the key stays in memory). No Qt here."""
    data = sorting_from_controller(controller, spike_clusters, groups)
    conn = None if cfg.offline else api.resolve_connection(cfg.base_url, [ks_dir], cfg.configured_base_url)
    return data, pipeline.make_plan(data, ks_dir, cfg), conn


def _judge_task(data, ks_dir, cfg, plan, conn, progress):
    """Background: render and judge every planned pair, write the results. No Qt here."""
    return pipeline.run(data, ks_dir, cfg, plan=plan, connection=conn, progress=progress.update,
                        is_cancelled=lambda: progress.cancelled)


def default_settings() -> dict:
    """The dialog's settings, with defaults from :class:`pipeline.RunConfig`."""
    d = pipeline.RunConfig()
    return dict(threshold=d.threshold, model=d.model, base_url=d.base_url, workers=d.workers)


#: key of the last used dialog settings in phy's GUI state (phy saves it in ~/.phy/TemplateGUI/state.json)
STATE_KEY = "PhyPluginsVlmMergeDialog"


def saved_settings(state: dict) -> dict:
    """The dialog settings saved in phy's GUI state, keeping only well-typed values."""
    saved = state.get(STATE_KEY)
    if not isinstance(saved, dict):  # absent, or an edited/corrupted state file
        return {}
    kinds = dict(threshold=(int, float), model=str, base_url=(str, type(None)), workers=int)
    return {k: saved[k] for k, kind in kinds.items()
            if k in saved and isinstance(saved[k], kind) and not isinstance(saved[k], bool)}


class PhyPluginsVlmMergePlugin(IPlugin):
    """AI merge suggestions reviewed and accepted inside phy."""

    def attach_to_controller(self, controller):
        self.controller = controller
        controller.phy_plugins_vlm_merge = self  # lets scripts and tests reach the plugin
        self.gui = None
        self.view = None
        self.task = None
        self.ks_dir = Path(controller.model.dir_path)
        self.suggestions = SuggestionList()
        self.previous_similarity = None
        self.info = ""  # the dock's info line
        self.settings = default_settings()
        self.configured_base_url = None  # the plugin config's server: used after OPENAI_BASE_URL and .env
        controller.similarity_functions[SIMILARITY_NAME] = self.similarity
        controller.view_creator[VIEW_NAME] = self._create_view
        connect(self._on_gui_ready, event="gui_ready", sender=controller)
        connect(self._on_cluster, event="cluster")
        connect(self._on_close_view, event="close_view")
        if (self.ks_dir / CSV_NAME).exists():  # earlier results: open the dock with them
            controller.at_least_one_view(VIEW_NAME)

    # ---------------------------------------------------------------- phy callbacks
    @isolated
    def _on_gui_ready(self, sender, gui, **kwargs):
        self.gui = gui
        try:
            from phy_plugins.core.settings import plugin_settings

            conf = plugin_settings("vlm_merge")
            self.settings.update({k: conf[k] for k in self.settings if k in conf and k != "base_url"})
            self.configured_base_url = conf.get("base_url")
        except Exception as exc:  # noqa: BLE001
            logger.warning("vlm_merge: settings ignored (%s)", exc)
        self.settings.update(saved_settings(gui.state))  # the last run's choices win over the config
        actions = ai_actions(gui)
        actions.add(self.ask_and_suggest, name="Suggest merges...", docstring=
                    "Ask an AI model (or the offline judge) which similar pairs to merge")
        actions.add(self.show_view, name="Show merge suggestions")
        actions.add(self.cancel, name="Cancel merge suggestions")
        actions.add(self.retry_errors, name="Retry failed pairs")
        actions.add(self.toggle_similarity, name="Rank similar clusters by AI merge score")
        self._load_previous()

    @isolated
    def _on_cluster(self, sender, up, **kwargs):
        sup = getattr(self.controller, "supervisor", None)
        if sup is None or sender not in (sup, sup.clustering, sup.cluster_meta):
            return  # another controller's event
        if getattr(up, "history", None) == "undo":  # an undone Accept: back to pending
            restored = set(int(c) for c in (up.added or []))
            for s in self.suggestions.items.values():
                if s.status == ACCEPTED and set(s.pair) <= restored:
                    s.status = PENDING
                    FewShotBank(self.ks_dir).remove(*s.pair)
        self.refresh()

    @isolated
    def _on_close_view(self, view, gui, **kwargs):
        if view is self.view:
            self.view = None

    # ---------------------------------------------------------------- view
    @isolated
    def _create_view(self):
        from .view import PhyPluginsVlmMergeView

        self.view = PhyPluginsVlmMergeView(self.select_pair, self.accept, self.reject)
        self.refresh()
        return self.view

    @isolated
    def show_view(self):
        if self.view is None and self.gui is not None:
            self.gui.create_and_add_view(VIEW_NAME)
        return self.view

    def _alive(self) -> set[int]:
        return set(int(c) for c in self.controller.supervisor.clustering.cluster_ids)

    def refresh(self, info: str = "") -> None:
        self.info = info or self.info
        if self.view is not None:
            self.view.set_rows(self.suggestions.rows(self._alive()), self.info)

    def _load_previous(self) -> None:
        path = self.ks_dir / CSV_NAME
        if path.exists():
            try:
                self.suggestions.set_results(read_results_csv(path))
                self.refresh(f"{len(self.suggestions)} suggestion(s) from {CSV_NAME}")
            except Exception as exc:  # noqa: BLE001 - a bad CSV must not break phy
                status(self.gui, f"vlm_merge: could not read {CSV_NAME}: {exc}")

    # ---------------------------------------------------------------- similarity
    def similarity(self, cluster_id):
        """phy similarity function: AI merge score of each suggested partner."""
        try:
            return self.suggestions.similar(cluster_id, self._alive())
        except Exception as exc:  # noqa: BLE001
            logger.error("vlm_merge similarity failed: %s", exc)
            return []

    @isolated
    def toggle_similarity(self):
        sup = self.controller.supervisor
        if sup.similarity == self.similarity:
            sup.similarity = self.previous_similarity or self.controller.similarity_functions[
                self.controller.similarity]
            status(self.gui, "similar clusters ranked by template similarity")
        else:
            self.use_ai_similarity()

    def use_ai_similarity(self) -> None:
        sup = self.controller.supervisor
        if sup.similarity != self.similarity:
            self.previous_similarity = sup.similarity
            sup.similarity = self.similarity
        status(self.gui, "similar clusters ranked by AI merge score "
               "(AI > Rank similar clusters... to switch back)")

    # ---------------------------------------------------------------- review
    @isolated
    def select_pair(self, a: int, b: int):
        alive = self._alive()
        if a in alive and b in alive:
            self.controller.supervisor.select([int(a), int(b)])

    @isolated
    def accept(self, a: int, b: int):
        """Merge the pair through phy's supervisor (undoable, saved like a manual merge)."""
        s = self.suggestions.get(a, b)
        if s is None:
            return
        alive = self._alive()
        if not {a, b} <= alive:
            status(self.gui, f"clusters {a} and {b} no longer exist: nothing merged")
            return
        self._bank(s, "merge")
        s.status = ACCEPTED
        self.controller.supervisor.merge([int(a), int(b)])
        status(self.gui, f"merged {a} and {b} (undo with Ctrl+Z)")

    @isolated
    def reject(self, a: int, b: int):
        s = self.suggestions.get(a, b)
        if s is None:
            return
        self._bank(s, "no_merge")
        s.status = REJECTED
        self.refresh()
        status(self.gui, f"rejected {a}-{b} (recorded in the few-shot bank)")

    def _bank(self, s, label: str) -> None:
        img = self.ks_dir / s.result.image_file if s.result.image_file else None
        if img is None or not img.exists():
            logger.warning("vlm_merge: no image for %s; not added to the few-shot bank", s.pair)
            return
        note = f"{'accepted' if label == 'merge' else 'rejected'} in phy; model said " \
               f"{s.result.decision}"
        FewShotBank(self.ks_dir).add(*s.pair, label, img.read_bytes(), note)

    # ---------------------------------------------------------------- runs
    @isolated
    def ask_and_suggest(self):
        from .view import PhyPluginsVlmMergeDialog

        values = PhyPluginsVlmMergeDialog(self.gui, **self.settings).exec_()
        if values:
            self.suggest(**values, confirm=True)

    def _snapshot(self):
        sup = self.controller.supervisor
        spike_clusters = np.array(sup.clustering.spike_clusters, copy=True)
        groups = {int(c): sup.cluster_meta.get("group", c) or ""
                  for c in sup.clustering.cluster_ids}
        return spike_clusters, groups

    def suggest(self, threshold: float | None = None, model: str | None = None,
                base_url: str | None = None, workers: int | None = None,
                confirm: bool = True) -> BackgroundTask | None:
        """Plan in the background, show pairs + cost (``confirm``), then run in the background.
        Omitted values take :class:`pipeline.RunConfig`'s defaults."""
        if self.task is not None and self.task.running:
            status(self.gui, "vlm_merge: a run is already in progress (AI > Cancel...)")
            return None
        given = dict(threshold=threshold, model=model, base_url=base_url, workers=workers)
        values = {**default_settings(), **{k: v for k, v in given.items() if v is not None}}
        self.settings.update(values)
        if self.gui is not None:  # remembered across sessions (never the key: it is not a setting)
            self.gui.state[STATE_KEY] = dict(values)
        cfg = pipeline.RunConfig(**values, configured_base_url=self.configured_base_url)
        spike_clusters, groups = self._snapshot()

        def planned(value):
            data, plan, conn = value
            if not plan.candidates:
                status(self.gui, f"vlm_merge: no pair with similarity >= {cfg.threshold}")
                return
            if not cfg.offline and not conn.api_key and not conn.base_url:
                status(self.gui, "vlm_merge: no API key. Set OPENAI_API_KEY (environment or "
                       ".env), give a server URL, or choose the model 'offline'")
                return
            if confirm and not self._confirm(plan):
                status(self.gui, "vlm_merge: nothing sent")
                return
            self._start_run(data, cfg, plan, conn)

        self.task = BackgroundTask(_plan_task, self.controller, spike_clusters, groups,
                                   self.ks_dir, cfg, on_result=planned,
                                   gui=self.gui, name="AI merge: planning")
        return self.task

    def _confirm(self, plan) -> bool:
        from PyQt5.QtWidgets import QMessageBox

        if plan.model == pipeline.OFFLINE:
            return True
        answer = QMessageBox.question(
            self.gui, "Suggest merges", plan.summary() + "\n\nSend these images to the "
            "model? Only the rendered evidence images and cluster ids are sent.",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def _start_run(self, data, cfg, plan, conn):
        self.show_view()
        self.refresh(plan.summary())

        def done(report):
            self.suggestions.set_results(report.results)
            self.use_ai_similarity()
            self.refresh(report.summary() + f" - {report.csv_path.name}")
            status(self.gui, f"AI merge: {report.summary()}")

        self.task = BackgroundTask(_judge_task, data, self.ks_dir, cfg, plan, conn, on_result=done,
                                   on_progress=lambda d, t, x: self.view and self.view.set_info(
                                       f"{d}/{t} pairs judged {x}"),
                                   gui=self.gui, name="AI merge")

    @isolated
    def cancel(self):
        if self.task is not None and self.task.running:
            self.task.cancel()
            status(self.gui, "AI merge: cancelling (finished pairs are kept)")

    @isolated
    def retry_errors(self):
        errors = self.suggestions.errors()
        if not errors:
            status(self.gui, "AI merge: no failed pair to retry")
            return
        # judged pairs come from the cache: only the failed ones are sent again
        self.suggest(**self.settings, confirm=True)
