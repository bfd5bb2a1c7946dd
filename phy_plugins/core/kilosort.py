"""Access to a Kilosort / phy output folder.

Two routes: :func:`open_template_model` returns phylib's ``TemplateModel`` (what phy itself
uses); :func:`load_arrays` memory-maps the raw ``.npy`` files with numpy only, for pure-core
computations that must not depend on phylib's caches.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DatasetError(RuntimeError):
    """A Kilosort/phy folder is missing something or is malformed."""


REQUIRED_FILES = ("spike_times.npy", "templates.npy", "channel_positions.npy")


def read_params(ks_dir: str | Path) -> dict:
    """Parse ``params.py`` without executing it (literal assignments only)."""
    path = Path(ks_dir) / "params.py"
    if not path.exists():
        raise DatasetError(f"{path} not found: is {Path(ks_dir)} a Kilosort/phy output folder?")
    params: dict = {}
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    params[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    params[target.id] = None
    return params


def _resolve_dat_paths(ks_dir: Path, dat_path: object) -> list[Path]:
    paths = dat_path if isinstance(dat_path, (list, tuple)) else [dat_path]
    out = []
    for p in paths:
        if not p:
            continue
        p = Path(str(p))
        out.append(p if p.is_absolute() else ks_dir / p)
    return out


@dataclass
class KilosortArrays:
    """Numpy views of a Kilosort folder (memory-mapped where large)."""

    ks_dir: Path
    spike_times: np.ndarray  # samples, int64
    spike_templates: np.ndarray
    spike_clusters: np.ndarray
    amplitudes: np.ndarray | None
    templates: np.ndarray  # (n_templates, n_samples, n_channels), whitened
    whitening_mat_inv: np.ndarray | None
    channel_positions: np.ndarray
    channel_map: np.ndarray
    pc_features: np.ndarray | None
    pc_feature_ind: np.ndarray | None
    sample_rate: float
    n_channels_dat: int
    dtype: str
    offset: int
    dat_path: Path | None

    @property
    def duration_s(self) -> float:
        """Recording duration: the raw file's length when present, else the last spike."""
        traces = self.traces()
        if traces is not None:
            return traces.shape[0] / self.sample_rate
        return float(self.spike_times[-1] + 1) / self.sample_rate if len(self.spike_times) else 0.0

    @property
    def cluster_ids(self) -> np.ndarray:
        return np.unique(self.spike_clusters)

    def unwhitened_templates(self) -> np.ndarray:
        """Templates multiplied by ``whitening_mat_inv`` (identity when absent)."""
        if self.whitening_mat_inv is None:
            return np.asarray(self.templates)
        return np.einsum("tsc,cd->tsd", self.templates, self.whitening_mat_inv)

    def traces(self) -> np.ndarray | None:
        """The raw recording as a ``(n_samples, n_channels_dat)`` memmap, or None if absent."""
        if self.dat_path is None or not self.dat_path.exists():
            return None
        itemsize = np.dtype(self.dtype).itemsize
        n_bytes = self.dat_path.stat().st_size - self.offset
        n_samples = n_bytes // (itemsize * self.n_channels_dat)
        if n_samples <= 0:
            return None
        return np.memmap(
            self.dat_path, dtype=self.dtype, mode="r", offset=self.offset,
            shape=(n_samples, self.n_channels_dat),
        )


def _load(ks_dir: Path, name: str, required: bool = True) -> np.ndarray | None:
    path = ks_dir / name
    if not path.exists():
        if required:
            raise DatasetError(f"{path} not found")
        return None
    try:
        return np.load(path, mmap_mode="r")
    except ValueError:  # object arrays cannot be memory-mapped
        return np.load(path)


def load_arrays(ks_dir: str | Path) -> KilosortArrays:
    """Load a Kilosort folder with numpy only. Raises :class:`DatasetError` on missing files."""
    ks_dir = Path(ks_dir)
    if not ks_dir.is_dir():
        raise DatasetError(f"{ks_dir} is not a folder")
    for name in REQUIRED_FILES:
        if not (ks_dir / name).exists():
            raise DatasetError(f"{ks_dir / name} not found: not a Kilosort output folder")
    params = read_params(ks_dir) if (ks_dir / "params.py").exists() else {}
    spike_times = np.asarray(_load(ks_dir, "spike_times.npy")).ravel().astype(np.int64)
    spike_templates = _load(ks_dir, "spike_templates.npy", required=False)
    spike_clusters = _load(ks_dir, "spike_clusters.npy", required=False)
    if spike_templates is None and spike_clusters is None:
        raise DatasetError(f"{ks_dir}: neither spike_clusters.npy nor spike_templates.npy")
    spike_templates = np.asarray(spike_templates if spike_templates is not None else spike_clusters).ravel()
    spike_clusters = np.asarray(spike_clusters if spike_clusters is not None else spike_templates).ravel()
    if not (len(spike_times) == len(spike_clusters) == len(spike_templates)):
        raise DatasetError(f"{ks_dir}: spike_times, spike_clusters and spike_templates differ in length")
    amplitudes = _load(ks_dir, "amplitudes.npy", required=False)
    templates = _load(ks_dir, "templates.npy")
    positions = np.asarray(_load(ks_dir, "channel_positions.npy"), dtype=float)
    channel_map = _load(ks_dir, "channel_map.npy", required=False)
    if channel_map is None:
        channel_map = np.arange(len(positions))
    dat_paths = _resolve_dat_paths(ks_dir, params.get("dat_path"))
    return KilosortArrays(
        ks_dir=ks_dir,
        spike_times=spike_times,
        spike_templates=spike_templates,
        spike_clusters=spike_clusters,
        amplitudes=None if amplitudes is None else np.asarray(amplitudes).ravel(),
        templates=templates,
        whitening_mat_inv=_load(ks_dir, "whitening_mat_inv.npy", required=False),
        channel_positions=positions,
        channel_map=np.asarray(channel_map).ravel(),
        pc_features=_load(ks_dir, "pc_features.npy", required=False),
        pc_feature_ind=_load(ks_dir, "pc_feature_ind.npy", required=False),
        sample_rate=float(params.get("sample_rate", 30000.0)),
        n_channels_dat=int(params.get("n_channels_dat", len(positions))),
        dtype=str(params.get("dtype", "int16")),
        offset=int(params.get("offset", 0) or 0),
        dat_path=dat_paths[0] if dat_paths else None,
    )


def open_template_model(ks_dir: str | Path):
    """Open the folder with phylib's ``TemplateModel`` (as phy does). Raises :class:`DatasetError`."""
    from phylib.io.model import TemplateModel, get_template_params

    params_path = Path(ks_dir) / "params.py"
    if not params_path.exists():
        raise DatasetError(f"{params_path} not found")
    try:
        return TemplateModel(**get_template_params(str(params_path)))
    except Exception as exc:  # phylib raises many kinds of errors on bad folders
        raise DatasetError(f"phylib could not open {ks_dir}: {exc}") from exc


def write_params_py(
    ks_dir: str | Path,
    *,
    dat_path: str | list[str] = "recording.dat",
    n_channels_dat: int,
    sample_rate: float = 30000.0,
    dtype: str = "int16",
    offset: int = 0,
    hp_filtered: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a phy ``params.py``; an existing one is kept unless ``overwrite``."""
    from .atomic import atomic_write_text

    path = Path(ks_dir) / "params.py"
    if path.exists() and not overwrite:
        return path
    text = (
        f"dat_path = {dat_path!r}\n"
        f"n_channels_dat = {int(n_channels_dat)}\n"
        f"dtype = {dtype!r}\n"
        f"offset = {int(offset)}\n"
        f"sample_rate = {float(sample_rate)!r}\n"
        f"hp_filtered = {bool(hp_filtered)}\n"
    )
    return atomic_write_text(path, text)
