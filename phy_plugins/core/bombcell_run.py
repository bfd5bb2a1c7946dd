"""Run bombcell on a Kilosort folder with settings suited to the folder (headless, no plots)."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

from .kilosort import DatasetError, load_arrays, read_params


def bombcell_params(ks_dir: str | Path, *, raw: bool = True, gain_to_uv: float | None = None,
                    **overrides) -> dict:
    """bombcell's default parameters adapted to ``ks_dir``.

    Raw-data rules are used only when the raw file exists and ``raw`` is True. For recordings
    shorter than 10 minutes the presence-ratio bin shrinks so the rule is not vacuous
    (one 60 s bin per minute would always pass).
    """
    import bombcell as bc

    ks_dir = Path(ks_dir)
    arrays = load_arrays(ks_dir)
    params = read_params(ks_dir) if (ks_dir / "params.py").exists() else {}
    raw_file = arrays.dat_path if (raw and arrays.dat_path is not None and arrays.dat_path.exists()) else None
    if gain_to_uv is None and raw_file is not None:
        gain_to_uv = 0.195  # Neuropixels 1.0 AP gain; our synthetic data use it too
    n_templates = arrays.templates.shape[1]
    param = bc.get_default_parameters(
        str(ks_dir), raw_file=str(raw_file) if raw_file else None,
        kilosort_version=4 if n_templates == 61 else 2, gain_to_uV=gain_to_uv,
    )
    duration = arrays.duration_s
    param.update(
        nChannels=int(params.get("n_channels_dat", arrays.channel_positions.shape[0])),
        nSyncChannels=0,
        ephys_sample_rate=float(params.get("sample_rate", arrays.sample_rate)),
        plotGlobal=False, plotDetails=False, savePlots=False, verbose=False,
    )
    if raw_file is None:
        param["extractRaw"] = False
    if duration < 600:
        param["presenceRatioBinSize"] = max(1.0, duration / 12.0)
    param.update(overrides)
    return param


def run_bombcell(ks_dir: str | Path, save_path: str | Path | None = None, *, raw: bool = True,
                 quiet: bool = True, **param_overrides) -> Path:
    """Run bombcell's full pipeline; return the folder holding its outputs (``ks_dir/bombcell``).

    bombcell writes ``templates._bc_qMetrics.parquet``, the effective parameters and the
    ``cluster_bc_unitType.tsv`` phy shows. Raises :class:`DatasetError` on unusable input.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")
    import bombcell as bc

    ks_dir = Path(ks_dir)
    save = Path(save_path) if save_path is not None else ks_dir / "bombcell"
    save.mkdir(parents=True, exist_ok=True)
    param = bombcell_params(ks_dir, raw=raw, **param_overrides)
    try:
        with contextlib.ExitStack() as stack:
            if quiet:  # bombcell prints progress bars, joblib logs and fit warnings
                stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
                stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
                stack.enter_context(warnings.catch_warnings())
                warnings.simplefilter("ignore")
            bc.run_bombcell(str(ks_dir), str(save), param)
    except Exception as exc:
        raise DatasetError(f"bombcell failed on {ks_dir}: {type(exc).__name__}: {exc}") from exc
    return save
