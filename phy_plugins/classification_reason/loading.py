"""Read a bombcell output folder (parquet or CSV) and evaluate it, keyed on phy cluster ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .engine import Evaluation, evaluate

QM_STEM = "templates._bc_qMetrics"
PARAM_STEM = "_bc_parameters._bc_qMetrics"
ID_COLUMN = "phy_clusterID"
LABEL_COLUMN = "bc_unitType"


#: prefixes of the notes that only say which files were read (shown in reports, not as warnings)
SOURCE_NOTES = ("metrics:", "parameters:")


def warning_notes(notes: list[str]) -> list[str]:
    """The notes worth a warning: everything but the files that were read."""
    return [n for n in notes if not n.startswith(SOURCE_NOTES)]


class BombcellOutputError(RuntimeError):
    """The bombcell folder is missing or unreadable; the message says what to do."""


@dataclass
class BombcellRun:
    """A loaded bombcell run: metrics table, saved param and where they came from."""

    folder: Path
    metrics: Any  # pandas DataFrame, one row per unit
    param: dict[str, Any] | None
    cluster_ids: np.ndarray
    saved_labels: np.ndarray | None
    notes: list[str] = field(default_factory=list)

    def evaluate(self) -> Evaluation:
        """Run the rules engine on this run; notes from loading are kept."""
        ev = evaluate(self.metrics, self.param, self.cluster_ids, self.saved_labels)
        ev.notes[:0] = self.notes
        return ev


def default_bombcell_dir(ks_dir: str | Path) -> Path:
    """``KS_DIR/bombcell``, bombcell's conventional save path."""
    return Path(ks_dir) / "bombcell"


def _find(folder: Path, stem: str) -> Path | None:
    for ext in (".parquet", ".csv"):
        path = folder / f"{stem}{ext}"
        if path.is_file():
            return path
    return None


def _read_table(path: Path):
    import pandas as pd

    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    df = pd.read_csv(path)
    unnamed = [c for c in df.columns if str(c).startswith("Unnamed: ")]
    return df.drop(columns=unnamed)


def _clean_param_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    return value


def load_bombcell_run(folder: str | Path) -> BombcellRun:
    """Load ``templates._bc_qMetrics`` and ``_bc_parameters._bc_qMetrics`` (parquet, else CSV).

    Raises :class:`BombcellOutputError` when the folder or the metrics table is unusable. A
    missing parameter file is not fatal: the rules needing it are reported as not evaluated.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BombcellOutputError(
            f"bombcell folder not found: {folder}. Run bombcell first (bc.run_bombcell(ks_dir, "
            f"save_path, param)) or pass --bombcell-dir.")
    qm_path = _find(folder, QM_STEM)
    if qm_path is None:
        raise BombcellOutputError(
            f"no {QM_STEM}.parquet or .csv in {folder}: this is not a bombcell output folder")
    try:
        metrics = _read_table(qm_path)
    except Exception as exc:
        raise BombcellOutputError(f"cannot read {qm_path}: {type(exc).__name__}: {exc}") from exc
    notes: list[str] = [f"{SOURCE_NOTES[0]} {qm_path}"]
    if ID_COLUMN in metrics.columns:
        ids_f = np.asarray(metrics[ID_COLUMN], dtype=float)
        if not np.all(np.isfinite(ids_f)):
            raise BombcellOutputError(f"{qm_path}: column {ID_COLUMN} has missing values")
        ids = ids_f.astype(np.int64)
    else:
        ids = np.arange(len(metrics), dtype=np.int64)
        notes.append(f"{qm_path.name} has no {ID_COLUMN} column (old bombcell?): "
                     "cluster ids taken as row positions")
    uniq, first = np.unique(ids, return_index=True)
    if uniq.size != ids.size:
        keep = np.sort(first)
        notes.append(f"{ids.size - uniq.size} duplicated cluster id row(s) ignored (first kept)")
        metrics = metrics.iloc[keep].reset_index(drop=True)
        ids = ids[keep]
    saved = metrics[LABEL_COLUMN].to_numpy(dtype=object) if LABEL_COLUMN in metrics.columns else None
    if saved is None:
        notes.append(f"no {LABEL_COLUMN} column: recomputed labels cannot be checked against bombcell's")
    if "RPV_status" not in metrics.columns:
        notes.append("no RPV_status column (written by bombcell <= 0.92): keepUncertainRPVUnits cannot apply")

    param = None
    param_path = _find(folder, PARAM_STEM)
    if param_path is None:
        notes.append(f"no {PARAM_STEM}.parquet or .csv in {folder}: threshold rules not evaluated")
    else:
        try:
            pdf = _read_table(param_path)
            if len(pdf) == 0:
                raise ValueError("empty table")
            param = {str(k): _clean_param_value(v) for k, v in pdf.iloc[0].to_dict().items()}
            notes.append(f"{SOURCE_NOTES[1]} {param_path}")
        except Exception as exc:
            notes.append(f"cannot read {param_path} ({type(exc).__name__}: {exc}): threshold rules not evaluated")
    return BombcellRun(folder, metrics, param, ids, saved, notes)
