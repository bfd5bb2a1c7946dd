"""Read labels and metrics tables: phy's cluster_group.tsv, label CSVs, metrics CSVs, bombcell tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from phy_plugins.core.tsv import read_cluster_tsv

ID_COLUMNS = ("cluster_id", "unit_id", "unit_index", "cluster", "phy_clusterID")
UNLABELLED = {"", "unsorted", "nan", "none"}


class TableError(ValueError):
    """A labels or metrics table is unusable; the message says why."""


def _read_any(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise TableError(f"file not found: {path}")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        sep = "\t" if path.suffix in (".tsv", ".txt") else ","
        return pd.read_csv(path, sep=sep)
    except Exception as exc:
        raise TableError(f"cannot read {path}: {exc}") from exc


def _with_id_index(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    frame = frame.loc[:, ~frame.columns.duplicated()]
    frame = frame.drop(columns=[c for c in frame.columns if str(c).endswith(".1") and str(c)[:-2] in ID_COLUMNS])
    for col in ID_COLUMNS:
        if col in frame.columns:
            ids = frame[col]
            break
    else:
        first = frame.columns[0]
        if str(first).startswith("Unnamed") or str(first) == "":
            ids = frame[first]
            col = first
        else:
            raise TableError(f"{path}: no id column (expected one of {', '.join(ID_COLUMNS)})")
    ids = pd.to_numeric(ids, errors="coerce")
    if ids.isna().any():
        raise TableError(f"{path}: column {col!r} has non-numeric ids")
    frame = frame.drop(columns=[col])
    frame.index = ids.astype(np.int64).to_numpy()
    frame.index.name = "cluster_id"
    # UnitRefine's training files may repeat units; identical repeats are dropped, conflicting ones refused
    dup = frame.reset_index().duplicated(keep="first").to_numpy()
    frame = frame[~dup]
    if frame.index.duplicated().any():
        raise TableError(f"{path}: conflicting rows for ids {sorted(set(frame.index[frame.index.duplicated()]))[:10]}")
    return frame


def read_metrics_table(path: str | Path) -> pd.DataFrame:
    """One row per unit, indexed by ``cluster_id`` (from ``cluster_id``/``unit_id``/unnamed index)."""
    path = Path(path)
    frame = _with_id_index(_read_any(path), path)
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    return numeric.loc[:, numeric.notna().any() | frame.isna().all()]


def read_bombcell_metrics(bombcell_dir: str | Path) -> pd.DataFrame:
    """bombcell's ``templates._bc_qMetrics.parquet`` (bombcell's own metric names)."""
    path = Path(bombcell_dir) / "templates._bc_qMetrics.parquet"
    frame = _read_any(path)
    if "phy_clusterID" not in frame.columns and "clusterID" in frame.columns:
        frame = frame.rename(columns={"clusterID": "cluster_id"})
    return _with_id_index(frame, path).apply(pd.to_numeric, errors="coerce")


def read_labels_csv(path: str | Path) -> pd.Series:
    """Labels ``cluster_id,label`` (or ``unit_id``), or UnitRefine's ``labels.csv`` (``unit_index,0``)."""
    path = Path(path)
    frame = _with_id_index(_read_any(path), path)
    if frame.shape[1] == 0:
        raise TableError(f"{path}: no label column")
    col = "label" if "label" in frame.columns else ("group" if "group" in frame.columns else frame.columns[0])
    labels = frame[col]
    labels = labels[labels.notna()]
    return labels.map(_norm_label).rename("label")


def _norm_label(value) -> object:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str):
        return value.strip()
    return value


def read_phy_labels(ks_dir: str | Path) -> pd.Series:
    """Human labels from ``cluster_group.tsv``; refuses a file identical to ``cluster_KSLabel.tsv``."""
    ks_dir = Path(ks_dir)
    groups = read_cluster_tsv(ks_dir, "group")
    if not groups:
        raise TableError(f"{ks_dir}: no labels in cluster_group.tsv (label clusters in phy first)")
    ks = read_cluster_tsv(ks_dir, "KSLabel")
    if ks and ks == groups:
        raise TableError(f"{ks_dir}: cluster_group.tsv equals cluster_KSLabel.tsv, so it holds no human labels")
    out = pd.Series({c: str(v).strip() for c, v in groups.items() if str(v).strip().lower() not in UNLABELLED})
    out.index.name = "cluster_id"
    return out.rename("label")


def apply_label_map(labels: pd.Series, mapping: dict[str, str] | None) -> pd.Series:
    """Map labels to classes (``{'good': 'good', 'mua': 'other', 'noise': 'other'}``); unmapped are dropped."""
    if not mapping:
        return labels
    low = {str(k).lower(): v for k, v in mapping.items()}
    mapped = labels.map(lambda v: low.get(str(v).lower()))
    return mapped[mapped.notna()]


def parse_label_map(items: list[str] | None) -> dict[str, str] | None:
    """``['good=good', 'mua=other', 'noise=other']`` -> dict; ``LABEL=CLASS`` with commas allowed on the left."""
    if not items:
        return None
    out = {}
    for item in items:
        if "=" not in item:
            raise TableError(f"label map {item!r} must look like LABEL=CLASS (e.g. mua,noise=other)")
        left, cls = item.split("=", 1)
        for lab in left.split(","):
            out[lab.strip()] = cls.strip()
    return out
