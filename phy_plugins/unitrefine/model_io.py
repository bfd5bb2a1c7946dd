"""Load and save UnitRefine / SpikeInterface model folders (``best_model.skops`` + ``model_info.json``)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phy_plugins.core.atomic import atomic_write_bytes, atomic_write_text
from phy_plugins.unitrefine.metrics_template import TEMPLATE_METRICS

MODEL_FILE = "best_model.skops"
INFO_FILE = "model_info.json"
SI_METRICS_VERSION = "0.102.3"  # SpikeInterface version whose metric definitions the features follow

# Types that skops does not trust by default but that plain scikit-learn pipelines need.
# Random forests need the Tree (skops >= 0.15 untrusts it), simple imputers a numpy dtype,
# gradient boosting its loss object and a dummy initial estimator.
SAFE_TYPES: frozenset[str] = frozenset(
    {
        "numpy.dtype",
        "sklearn.tree._tree.Tree",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.link.Interval",
        "sklearn.dummy.DummyClassifier",
        "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    }
)


class ModelError(ValueError):
    """A model folder cannot be read, written or used; the message says why."""


@dataclass
class UnitRefineModel:
    """A loaded pipeline with its metadata."""

    pipeline: object
    info: dict
    folder: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def feature_names(self) -> list[str]:
        names = getattr(self.pipeline, "feature_names_in_", None)
        if names is not None:
            return [str(n) for n in names]
        qm = self.info.get("metric_params", {}).get("quality_metric_params", {}).get("metric_names", [])
        tm = self.info.get("metric_params", {}).get("template_metric_params", {}).get("metric_names", [])
        if not qm and not tm:
            raise ModelError("the model has no feature_names_in_ and model_info.json lists no metric names")
        return list(qm) + list(tm)

    @property
    def classes(self) -> list:
        return list(self.pipeline.classes_)

    @property
    def label_conversion(self) -> dict:
        """Class code -> label, from ``model_info.json`` (codes are the pipeline's ``classes_``)."""
        conv = self.info.get("label_conversion") or {}
        out = {}
        for code in self.classes:
            out[code] = conv.get(str(code), conv.get(code, code))
        return out

    @property
    def labels(self) -> list:
        conv = self.label_conversion
        return [conv[c] for c in self.classes]

    def feature_importances(self) -> dict[str, float]:
        """Normalised importance of each feature (impurity importances or |coef|); empty if unknown."""
        clf = self.pipeline.steps[-1][1] if hasattr(self.pipeline, "steps") else self.pipeline
        imp = getattr(clf, "feature_importances_", None)
        if imp is None and hasattr(clf, "coef_"):
            imp = np.abs(np.asarray(clf.coef_)).sum(axis=0)
        if imp is None:
            return {}
        imp = np.asarray(imp, dtype=float)
        total = imp.sum()
        if total <= 0:
            return {}
        return {n: float(v / total) for n, v in zip(self.feature_names, imp)}


def restore_sklearn_compat(pipeline) -> list[str]:
    """Repair known scikit-learn version gaps in place; returns what was repaired.

    A SimpleImputer saved with scikit-learn <= 1.7 lacks ``_fill_dtype`` (added in 1.8), so it fails
    at predict time; it is the dtype it was fitted on (``_fit_dtype``).
    """
    fixed = []
    steps = getattr(pipeline, "steps", [("model", pipeline)])
    for name, step in steps:
        if hasattr(step, "steps"):
            fixed += restore_sklearn_compat(step)
        elif hasattr(step, "_fit_dtype") and not hasattr(step, "_fill_dtype"):
            step._fill_dtype = step._fit_dtype
            fixed.append(f"{name}: restored SimpleImputer._fill_dtype from _fit_dtype "
                         "(model saved with scikit-learn < 1.8)")
        elif hasattr(step, "_fill_dtype") and not hasattr(step, "_fit_dtype"):
            step._fit_dtype = step._fill_dtype
            fixed.append(f"{name}: restored SimpleImputer._fit_dtype from _fill_dtype")
    return fixed


def version_notes(info: dict) -> list[str]:
    """Differences between the versions a model was trained with and the installed ones."""
    import sklearn

    notes = []
    req = info.get("requirements") or {}
    trained = req.get("scikit-learn")
    if trained and trained != sklearn.__version__:
        notes.append(
            f"model trained with scikit-learn {trained}, running {sklearn.__version__}: "
            "probabilities may differ slightly (labels near 0.5 can flip); refit to remove the gap"
        )
    si = req.get("spikeinterface")
    if si:
        notes.append(f"features defined as in SpikeInterface {si}")
    return notes


def _skops_file(folder: Path, model_name: str | None) -> Path:
    if not folder.is_dir():
        raise ModelError(f"model folder not found: {folder}")
    if model_name:
        path = folder / model_name
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return path
    files = sorted(folder.glob("*.skops"))
    if not files:
        raise ModelError(f"no .skops model file in {folder}")
    if len(files) > 1:
        if (folder / MODEL_FILE).is_file():
            return folder / MODEL_FILE
        raise ModelError(f"several .skops files in {folder}, choose one: {[f.name for f in files]}")
    return files[0]


def load_model(folder: str | Path, *, model_name: str | None = None, trust: bool = False) -> UnitRefineModel:
    """Load a model folder; refuses types outside :data:`SAFE_TYPES` unless ``trust`` is True."""
    import skops.io as sio

    folder = Path(folder)
    path = _skops_file(folder, model_name)
    info_path = folder / INFO_FILE
    info: dict = {}
    notes: list[str] = []
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{info_path} is not valid JSON: {exc}") from exc
        if not isinstance(info, dict):
            raise ModelError(f"{info_path} does not hold a JSON object")
    else:
        notes.append(f"no {INFO_FILE} in {folder}: labels are the raw class codes")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises zipfile/json/key errors on corrupt files
        raise ModelError(f"cannot read model file {path} (corrupt or not a skops file): {exc}") from exc
    offending = sorted(set(untrusted) - SAFE_TYPES)
    if offending and not trust:
        raise ModelError(
            f"{path.name} contains types outside the scikit-learn/numpy allow-list: {', '.join(offending)}. "
            "Load it only if you trust its source (--trust-model / trust=True)."
        )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pipeline = sio.load(path, trusted=sorted(set(untrusted)))
    except Exception as exc:
        raise ModelError(f"cannot load model file {path}: {type(exc).__name__}: {exc}") from exc
    if any("InconsistentVersionWarning" in type(w.message).__name__ for w in caught):
        notes.append("scikit-learn warned that the model was saved with another version")
    if not hasattr(pipeline, "predict_proba"):
        raise ModelError(f"{path.name} holds a {type(pipeline).__name__}, not a classifier pipeline")
    notes += restore_sklearn_compat(pipeline)
    notes += version_notes(info)
    if offending:
        notes.append(f"loaded with explicitly trusted types: {', '.join(offending)}")
    return UnitRefineModel(pipeline=pipeline, info=info, folder=folder, notes=notes)


def save_model(
    folder: str | Path,
    pipeline,
    *,
    label_conversion: dict,
    metric_names: list[str] | None = None,
    accuracies=None,
    training_data=None,
    labels=None,
    extra_files: dict[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a folder UnitRefine and SpikeInterface can load; refuses to replace a model unless ``overwrite``."""
    import sklearn
    import skops.io as sio

    folder = Path(folder)
    if (folder / MODEL_FILE).exists() and not overwrite:
        raise ModelError(f"{folder / MODEL_FILE} exists; choose another folder or pass overwrite")
    folder.mkdir(parents=True, exist_ok=True)
    names = list(metric_names if metric_names is not None else getattr(pipeline, "feature_names_in_", []))
    info = {
        "metric_params": {
            "quality_metric_params": {"metric_names": [n for n in names if n not in TEMPLATE_METRICS]},
            "template_metric_params": {"metric_names": [n for n in names if n in TEMPLATE_METRICS]},
        },
        "requirements": {"spikeinterface": SI_METRICS_VERSION, "scikit-learn": sklearn.__version__},
        "label_conversion": {str(k): _jsonable(v) for k, v in label_conversion.items()},
    }
    atomic_write_bytes(folder / MODEL_FILE, sio.dumps(pipeline))
    atomic_write_text(folder / INFO_FILE, json.dumps(info, indent=4))
    if accuracies is not None:
        atomic_write_text(folder / "model_accuracies.csv", accuracies.to_csv())
    if training_data is not None:
        atomic_write_text(folder / "training_data.csv", training_data.to_csv())
    if labels is not None:
        atomic_write_text(folder / "labels.csv", labels.to_csv())
    for name, text in (extra_files or {}).items():
        atomic_write_text(folder / name, text)
    return folder


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    return value
