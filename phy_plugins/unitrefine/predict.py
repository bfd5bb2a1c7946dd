"""Apply UnitRefine models to a metrics table (one row per cluster)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from phy_plugins.unitrefine.model_io import ModelError, UnitRefineModel

# SpikeInterface >= 0.103 renamed three template metrics; models from 0.102 ask for the old names.
NEW_TO_OLD_NAMES = {
    "peak_to_trough_duration": "peak_to_valley",
    "trough_half_width": "half_width",
}


@dataclass
class FeatureCheck:
    """Which model features are absent (all NaN) and the share of the model's importance they carry."""

    missing: list[str] = field(default_factory=list)
    importance_missing: float | None = None
    n_units: int = 0

    def message(self) -> str:
        if not self.missing:
            return ""
        share = ""
        if self.importance_missing is not None:
            share = f" ({self.importance_missing:.0%} of the model's feature importance)"
        return f"{len(self.missing)} model features unavailable, imputed: {', '.join(self.missing)}{share}"


def feature_matrix(metrics: pd.DataFrame, names: list[str]) -> tuple[np.ndarray, FeatureCheck]:
    """Columns ``names`` in that order as float32, +-inf -> NaN; absent columns become NaN and are reported."""
    frame = metrics.copy()
    for new, old in NEW_TO_OLD_NAMES.items():
        if old not in frame.columns and new in frame.columns:
            frame[old] = frame[new]
    if "peak_trough_ratio" not in frame.columns and "peak_after_to_trough_ratio" in frame.columns:
        frame["peak_trough_ratio"] = -frame["peak_after_to_trough_ratio"]
    check = FeatureCheck(n_units=len(frame))
    cols = []
    for name in names:
        if name in frame.columns:
            col = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
        else:
            col = np.full(len(frame), np.nan)
        if len(col) and np.all(~np.isfinite(col)):
            check.missing.append(name)
        cols.append(col)
    x = np.column_stack(cols) if cols else np.empty((len(frame), 0))
    x = x.astype(np.float32)
    x[np.isinf(x)] = np.nan
    return x, check


def _model_frame(x: np.ndarray, names: list[str], index) -> pd.DataFrame:
    return pd.DataFrame(x, columns=names, index=index)


def predict(model: UnitRefineModel, metrics: pd.DataFrame) -> tuple[pd.DataFrame, FeatureCheck]:
    """Predicted label, confidence (max probability) and per-class probabilities, indexed like ``metrics``."""
    names = model.feature_names
    x, check = feature_matrix(metrics, names)
    if check.missing:
        imp = model.feature_importances()
        if imp:
            check.importance_missing = float(sum(imp.get(n, 0.0) for n in check.missing))
    if len(check.missing) == len(names) and len(metrics):
        raise ModelError(f"none of the {len(names)} features the model needs are available: {', '.join(names)}")
    out = pd.DataFrame(index=metrics.index)
    if len(metrics) == 0:
        out["prediction"] = pd.Series(dtype=object)
        out["confidence"] = pd.Series(dtype=float)
        return out, check
    frame = _model_frame(x, names, metrics.index)
    try:
        proba = model.pipeline.predict_proba(frame)
    except Exception as exc:
        raise ModelError(f"the model failed to predict: {type(exc).__name__}: {exc}") from exc
    classes = model.classes
    conv = model.label_conversion
    best = np.argmax(proba, axis=1)
    out["prediction"] = [conv[classes[i]] for i in best]
    out["confidence"] = proba[np.arange(len(best)), best]
    for j, code in enumerate(classes):
        out[f"p_{conv[code]}"] = proba[:, j]
    out["n_imputed"] = np.isnan(x).sum(axis=1)
    return out, check


def noise_label_of(model: UnitRefineModel) -> object:
    """The label of the first-stage class that stops the cascade (the one named like 'noise')."""
    hits = [lab for lab in model.labels if "noise" in str(lab).lower()]
    if len(hits) != 1:
        raise ModelError(
            f"first cascade model must have exactly one 'noise' class, it has labels {model.labels}"
        )
    return hits[0]


def predict_cascade(
    first: UnitRefineModel, second: UnitRefineModel, metrics: pd.DataFrame
) -> tuple[pd.DataFrame, list[FeatureCheck]]:
    """Noise/neural first, then the second model on the non-noise units.

    The confidence is p1 for noise and p1 * p2 otherwise (as UnitRefine's GUI reports it).
    """
    noise = noise_label_of(first)
    p1, c1 = predict(first, metrics)
    out = pd.DataFrame(index=metrics.index)
    out["prediction"] = p1["prediction"].astype(object)
    out["confidence"] = p1["confidence"].astype(float)
    neural = p1["prediction"] != noise
    checks = [c1]
    if neural.any():
        p2, c2 = predict(second, metrics.loc[neural])
        checks.append(c2)
        out.loc[neural, "prediction"] = p2["prediction"].to_numpy()
        out.loc[neural, "confidence"] = p1.loc[neural, "confidence"].to_numpy() * p2["confidence"].to_numpy()
    out["stage1_confidence"] = p1["confidence"]
    return out, checks


def predict_models(models: list[UnitRefineModel], metrics: pd.DataFrame) -> tuple[pd.DataFrame, list[FeatureCheck]]:
    """One model, or a two-model cascade."""
    if len(models) == 1:
        pred, check = predict(models[0], metrics)
        return pred, [check]
    if len(models) == 2:
        return predict_cascade(models[0], models[1], metrics)
    raise ModelError(f"give one model or two (cascade), not {len(models)}")
