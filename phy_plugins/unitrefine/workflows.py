"""End-to-end steps shared by the CLI and the phy plugin (pure Python, no Qt)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from phy_plugins.core.atomic import atomic_write_text
from phy_plugins.core.tsv import write_cluster_tsv
from phy_plugins.unitrefine.model_io import ModelError, UnitRefineModel, load_model, save_model
from phy_plugins.unitrefine.phy_features import FeatureReport, compute_features
from phy_plugins.unitrefine.predict import FeatureCheck, predict_models
from phy_plugins.unitrefine.tables import apply_label_map, read_phy_labels
from phy_plugins.unitrefine.train import SearchResult, refit, search

LABEL_FIELD = "unitrefine_label"
CONFIDENCE_FIELD = "unitrefine_confidence"
REPORT_FILE = "training_report.md"
Progress = Callable[[int, int, str], None]


def load_models(folders: list[str | Path], trust: bool = False) -> list[UnitRefineModel]:
    return [load_model(f, trust=trust) for f in folders]


def required_features(models: list[UnitRefineModel]) -> list[str]:
    names: list[str] = []
    for m in models:
        names += [n for n in m.feature_names if n not in names]
    return names


def folder_features(ks_dir: str | Path, names: list[str] | None = None, *, spike_clusters=None, cluster_ids=None,
                    raw_amplitudes: bool = False, progress: Progress | None = None
                    ) -> tuple[pd.DataFrame, FeatureReport]:
    return compute_features(ks_dir, names=names, spike_clusters=spike_clusters, cluster_ids=cluster_ids,
                            raw_amplitudes=raw_amplitudes, progress=progress)


def missing_feature_messages(checks: list[FeatureCheck], report: FeatureReport | None = None) -> list[str]:
    out = [c.message() for c in checks if c.missing]
    if report is not None:
        miss = {n for c in checks for n in c.missing}
        out += [f"  {n}: {report.unavailable[n]}" for n in sorted(miss) if n in report.unavailable]
    return out


def predict_table(models: list[UnitRefineModel], metrics: pd.DataFrame) -> tuple[pd.DataFrame, list[FeatureCheck]]:
    return predict_models(models, metrics)


def write_prediction_tsvs(ks_dir: str | Path, pred: pd.DataFrame) -> list[Path]:
    """``cluster_unitrefine_label.tsv`` and ``cluster_unitrefine_confidence.tsv`` (phy layout, atomic)."""
    labels = {int(c): v for c, v in pred["prediction"].items()}
    conf = {int(c): round(float(v), 4) for c, v in pred["confidence"].items()}
    return [write_cluster_tsv(ks_dir, LABEL_FIELD, labels), write_cluster_tsv(ks_dir, CONFIDENCE_FIELD, conf)]


def write_prediction_csv(path: str | Path, pred: pd.DataFrame) -> Path:
    out = pred[["prediction", "confidence"]].copy()
    out.index.name = "cluster_id"
    return atomic_write_text(path, out.to_csv())


def labelled_sessions(ks_dirs: list[str | Path], label_map: dict[str, str] | None, *, raw_amplitudes: bool = False,
                      progress: Progress | None = None) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Features, labels and session names of the labelled clusters of several phy folders.

    Rows get a unique integer index (session-major); the original cluster id is in column ``cluster_id``.
    """
    frames, labels, sessions = [], [], []
    offset = 0
    for i, d in enumerate(ks_dirs):
        lab = apply_label_map(read_phy_labels(d), label_map)
        if progress:
            progress(i, len(ks_dirs), f"computing features of {Path(d).name}")
        feats, _ = compute_features(d, cluster_ids=sorted(lab.index), raw_amplitudes=raw_amplitudes)
        idx = np.arange(offset, offset + len(feats))
        offset += len(feats)
        lab = lab.reindex(feats.index)
        feats = feats.copy()
        feats.index, lab.index = idx, idx
        frames.append(feats)
        labels.append(lab)
        sessions.append(pd.Series(str(d), index=idx))
    return pd.concat(frames), pd.concat(labels).dropna(), pd.concat(sessions)


def _labels_frame(codes: pd.Series) -> pd.DataFrame:
    """UnitRefine's ``labels.csv`` layout: index ``unit_index`` (0..n-1), class codes in column ``0``."""
    return codes.rename(0).reset_index(drop=True).rename_axis("unit_index").to_frame()


def save_search(result: SearchResult, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a UnitRefine/SpikeInterface model folder with the training report."""
    extra = {REPORT_FILE: result.report(),
             "feature_importances.csv": result.importances.rename("importance").rename_axis("feature").to_csv()}
    if result.loso is not None:
        extra["leave_one_session_out.csv"] = result.loso.to_csv(index=False)
    return save_model(out, result.pipeline, label_conversion=result.label_conversion,
                      metric_names=result.feature_names, accuracies=result.scores, training_data=result.x,
                      labels=_labels_frame(result.y), extra_files=extra, overwrite=overwrite)


def train_folders(ks_dirs: list[str | Path], out: str | Path | None, *, label_map=None, overwrite=False,
                  raw_amplitudes: bool = False, progress: Progress | None = None, **search_kwargs) -> SearchResult:
    feats, labels, sessions = labelled_sessions(ks_dirs, label_map, raw_amplitudes=raw_amplitudes, progress=progress)
    result = search(feats, labels, sessions=sessions, progress=progress, **search_kwargs)
    if out is not None:
        save_search(result, out, overwrite=overwrite)
    return result


def refit_folder(model: UnitRefineModel, metrics: pd.DataFrame, labels: pd.Series, out: str | Path, *,
                 overwrite: bool = False) -> UnitRefineModel:
    """Fast update of a model on new labels, saved as a model folder (no search)."""
    if not hasattr(model.pipeline, "feature_names_in_"):
        raise ModelError("this model has no feature_names_in_, it cannot be refitted")
    pipe, frame, codes = refit(model.pipeline, metrics, labels, model.label_conversion)
    save_model(out, pipe, label_conversion=model.label_conversion, metric_names=list(frame.columns),
               training_data=frame, labels=_labels_frame(codes), overwrite=overwrite)
    return UnitRefineModel(pipeline=pipe, info=model.info, folder=Path(out))
