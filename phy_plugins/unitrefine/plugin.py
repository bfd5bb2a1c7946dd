"""phy adapter: UnitRefine prediction columns, background prediction/training, curation actions."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from phy import IPlugin
from phylib.utils import connect

from phy_plugins.core.phy_safety import isolated, status
from phy_plugins.core.tasks import BackgroundTask
from phy_plugins.unitrefine.curation import PredictionStore, training_labels

logger = logging.getLogger("phy")
DEFAULTS = {"model": None, "trust_model": False, "auto_predict": True, "threshold": 0.8,
            "label_map": None, "group_map": None, "train_quick": True, "classifiers": None, "jobs": None,
            "raw_amplitudes": False}
MODELS_DIR = "unitrefine_models"


def _predict_task(ks_dir, models, spike_clusters, cluster_ids, raw_amplitudes, progress):
    """Background: features of ``cluster_ids`` on the current clustering, then predictions."""
    from phy_plugins.unitrefine import workflows as wf

    feats, report = wf.folder_features(ks_dir, wf.required_features(models), spike_clusters=spike_clusters,
                                       cluster_ids=cluster_ids, raw_amplitudes=raw_amplitudes,
                                       progress=progress.update)
    pred, checks = wf.predict_table(models, feats)
    return pred, wf.missing_feature_messages(checks, report)


def _train_task(ks_dir, spike_clusters, labels, settings, out, progress):
    """Background: features of the labelled clusters, pipeline search, model folder."""
    from phy_plugins.unitrefine import workflows as wf
    from phy_plugins.unitrefine.train import CLASSIFIERS, FULL_GRID, TINY_GRID, search

    feats, _ = wf.folder_features(ks_dir, None, spike_clusters=spike_clusters, cluster_ids=sorted(labels.index),
                                  raw_amplitudes=settings["raw_amplitudes"])
    result = search(feats, labels, grid=TINY_GRID if settings["train_quick"] else FULL_GRID,
                    classifiers=settings["classifiers"] or CLASSIFIERS, n_jobs=settings["jobs"],
                    progress=progress.update, cancelled=lambda: progress.cancelled)
    wf.save_search(result, out)
    return out, result.scores.iloc[0]["balanced_accuracy"]


def _refit_task(ks_dir, spike_clusters, labels, model, raw_amplitudes, out, progress):
    """Background: refit the current pipeline on the current labels (no search)."""
    from phy_plugins.unitrefine import workflows as wf

    feats, _ = wf.folder_features(ks_dir, model.feature_names, spike_clusters=spike_clusters,
                                  cluster_ids=sorted(labels.index), raw_amplitudes=raw_amplitudes)
    wf.refit_folder(model, feats, labels, out)
    return out, None


class PhyPluginsUnitRefinePlugin(IPlugin):
    """UnitRefine predictions as cluster-view columns, and models trained from the user's labels."""

    def attach_to_controller(self, controller):
        self.controller = controller
        controller.phy_plugins_unitrefine = self  # lets scripts and tests reach the plugin
        self.gui = None
        self.models = []
        self.task = None
        self.train_task = None
        self.messages: list[str] = []
        self.ks_dir = Path(controller.model.dir_path)
        self.store = PredictionStore()
        self.settings = dict(DEFAULTS)
        try:
            from phy_plugins.core.settings import plugin_settings

            conf = plugin_settings("unitrefine", getattr(controller, "config_dir", None))
            self.settings.update({k: conf[k] for k in DEFAULTS if k in conf})
        except Exception as exc:  # noqa: BLE001
            logger.warning("unitrefine: settings ignored (%s)", exc)
        controller.cluster_metrics["ur_label"] = self.store.label
        controller.cluster_metrics["ur_conf"] = self.store.confidence
        connect(self._on_gui_ready, event="gui_ready", sender=controller)
        connect(self._on_cluster, event="cluster")

    # ---------------------------------------------------------------- phy callbacks
    @isolated
    def _on_gui_ready(self, sender, gui, **kwargs):
        from phy.gui import Actions

        self.gui = gui
        actions = Actions(gui, name="UnitRefine", menu="&UnitRefine", insert_menu_before="&Help")
        actions.add(self.predict_all, name="UnitRefine: predict now")
        actions.add(self.ask_load_model, name="UnitRefine: load model folder", prompt=True, n_args=1,
                    prompt_default=lambda: str(self.settings.get("model") or ""))
        actions.add(self.apply_predictions, name="UnitRefine: apply predictions as labels", prompt=True,
                    n_args=1, prompt_default=lambda: str(self.settings["threshold"]),
                    docstring="Set the group of clusters whose prediction confidence is at least the value")
        actions.add(self.sort_by_confidence, name="UnitRefine: sort by least confidence")
        actions.separator()
        actions.add(self.train_from_labels, name="UnitRefine: train a model from my labels")
        actions.add(self.update_model, name="UnitRefine: update my model (fast refit)")
        actions.add(self.cancel, name="UnitRefine: cancel")
        self.actions = actions
        model = self.settings.get("model")
        if model:
            paths = model if isinstance(model, list) else [model]
            if self.load_models(paths) and self.settings["auto_predict"]:
                self.predict_all()

    @isolated
    def _on_cluster(self, sender, up, **kwargs):
        added = [int(c) for c in (getattr(up, "added", None) or [])]
        if added and self.models:
            self.predict(added)

    # ---------------------------------------------------------------- actions
    def _say(self, text: str) -> None:
        self.messages.append(text)
        logger.info("unitrefine: %s", text)
        status(self.gui, f"UnitRefine: {text}")

    @isolated
    def load_models(self, paths) -> bool:
        """Load one model (or two for a cascade); on error the previous models stay."""
        from phy_plugins.unitrefine import workflows as wf
        from phy_plugins.unitrefine.model_io import ModelError

        paths = [p if Path(p).is_absolute() else self.ks_dir / p for p in paths]
        try:
            models = wf.load_models(paths, trust=bool(self.settings["trust_model"]))
        except ModelError as exc:
            self._say(f"model not loaded: {exc}")
            return False
        self.models = models
        for m in models:
            for note in m.notes:
                logger.info("unitrefine: %s: %s", m.folder, note)
        self._say(f"model loaded: {', '.join(str(p) for p in paths)}")
        return True

    @isolated
    def ask_load_model(self, path):
        if self.load_models([str(path)]):
            self.predict_all()

    def _spike_clusters(self) -> np.ndarray:
        return np.array(self.controller.supervisor.clustering.spike_clusters, copy=True)

    def _cluster_ids(self) -> list[int]:
        return [int(c) for c in self.controller.supervisor.clustering.cluster_ids]

    @isolated
    def predict_all(self):
        return self.predict(None)

    @isolated
    def predict(self, cluster_ids=None):
        """Compute features and predictions in the background (all clusters, or the given ones)."""
        if not self.models:
            self._say("no model: set one with 'load model folder' or in phy_plugins.json")
            return None
        ids = self._cluster_ids() if cluster_ids is None else list(cluster_ids)
        self.task = BackgroundTask(_predict_task, self.ks_dir, list(self.models), self._spike_clusters(), ids,
                                   bool(self.settings["raw_amplitudes"]), on_result=self._on_predictions,
                                   gui=self.gui, name="UnitRefine prediction")
        return self.task

    def _on_predictions(self, value):
        pred, warnings = value
        alive = set(self._cluster_ids())
        pred = pred.loc[[c for c in pred.index if int(c) in alive]]
        ids = self.store.update(pred)
        sup = self.controller.supervisor
        rows = self.store.rows(ids)
        for table in (sup.cluster_view, sup.similarity_view):
            try:
                table.change(rows)
            except Exception as exc:  # noqa: BLE001 - a view may be closing
                logger.debug("unitrefine: table refresh failed: %s", exc)
        text = f"{len(ids)} clusters predicted"
        if warnings:
            text += "; " + warnings[0]
        self._say(text)

    @isolated
    def apply_predictions(self, threshold=None) -> dict[str, list[int]]:
        """Label clusters with their predicted group when confidence >= threshold (undo with phy's undo)."""
        threshold = float(self.settings["threshold"] if threshold is None else threshold)
        plan = self.store.plan_labels(self._cluster_ids(), threshold, self.settings.get("group_map"))
        if not plan:
            self._say(f"no prediction with confidence >= {threshold} maps to good/mua/noise "
                      "(set 'group_map' in the unitrefine settings for other labels)")
            return {}
        for group, ids in sorted(plan.items()):
            self.controller.supervisor.label("group", group, cluster_ids=ids)
        self._say("labelled " + ", ".join(f"{len(v)} {k}" for k, v in sorted(plan.items()))
                  + f" (confidence >= {threshold}); undo with Ctrl+Z")
        return plan

    @isolated
    def sort_by_confidence(self):
        """Least confident first: label these to teach the model most."""
        self.controller.supervisor.cluster_view.sort_by("ur_conf", "asc")

    def _labels(self):
        sup = self.controller.supervisor
        groups = {c: sup.cluster_meta.get("group", c) for c in self._cluster_ids()}
        return training_labels(groups, self.settings.get("label_map"))

    def _new_model_dir(self) -> Path:
        return self.ks_dir / MODELS_DIR / time.strftime("%Y%m%d-%H%M%S")

    @isolated
    def train_from_labels(self):
        """Search pipelines on the current labels in the background; the new model is then used."""
        labels = self._labels()
        out = self._new_model_dir()
        self.train_task = BackgroundTask(_train_task, self.ks_dir, self._spike_clusters(), labels,
                                         dict(self.settings), out, on_result=self._on_trained,
                                         gui=self.gui, name="UnitRefine training")
        return self.train_task

    @isolated
    def update_model(self):
        """Refit the current model on the current labels (seconds, no search)."""
        if len(self.models) != 1:
            self._say("fast update needs exactly one loaded model")
            return None
        labels = self._labels()
        self.train_task = BackgroundTask(_refit_task, self.ks_dir, self._spike_clusters(), labels, self.models[0],
                                         bool(self.settings["raw_amplitudes"]), self._new_model_dir(),
                                         on_result=self._on_trained, gui=self.gui,
                                         name="UnitRefine update")
        return self.train_task

    def _on_trained(self, value):
        out, score = value
        extra = f", cross-validated balanced accuracy {score:.3f}" if score is not None else ""
        self._say(f"model saved to {out}{extra}")
        if self.load_models([str(out)]):
            self.predict_all()

    @isolated
    def cancel(self):
        for t in (self.task, self.train_task):
            if t is not None and t.running:
                t.cancel()
