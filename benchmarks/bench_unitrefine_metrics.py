"""Check our phy-folder metrics against SpikeInterface's own on the same generated folder.

SpikeInterface gets the raw recording (high-pass 300 Hz), the same spike trains and the probe;
we get the phy folder. For every metric: rank correlation across clusters, median relative
difference, and the share of clusters where both agree within 1 %. Also times both.
The amplitude metrics are compared from three sources (see ``amplitude_variants``): raw traces
filtered like SpikeInterface's input, raw traces as params.py says, Kilosort's amplitudes (no raw
file; recording length from the last spike).

    python benchmarks/bench_unitrefine_metrics.py [--seed 0] [--json out.json]

Needs the 'bench' extra (spikeinterface).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# SpikeInterface >= 0.103 names of the 0.102 template metrics our models use
RENAMED = {"peak_to_valley": "peak_to_trough_duration", "half_width": "trough_half_width",
           "peak_trough_ratio": "peak_after_to_trough_ratio"}


FRACTIONS = {"presence_ratio", "amplitude_cutoff", "sliding_rp_violation", "rp_contamination", "nn_hit_rate",
             "nn_miss_rate", "sync_spike_2", "sync_spike_4", "sync_spike_8"}


def si_metrics(ks_dir: Path) -> tuple[pd.DataFrame, float]:
    import spikeinterface.full as si

    from phy_plugins.core.kilosort import load_arrays
    from phy_plugins.core.synthetic import load_ground_truth

    arr = load_arrays(ks_dir)
    gain = float(load_ground_truth(ks_dir).get("gain_uv", 1.0))
    t = time.perf_counter()
    rec = si.read_binary(arr.dat_path, sampling_frequency=arr.sample_rate, num_channels=arr.n_channels_dat,
                         dtype=arr.dtype, gain_to_uV=gain, offset_to_uV=0.0)
    rec.set_dummy_probe_from_locations(arr.channel_positions)
    rec = si.highpass_filter(rec, freq_min=300.0)
    sorting = si.NumpySorting.from_samples_and_labels([np.asarray(arr.spike_times)],
                                                      [np.asarray(arr.spike_clusters)], arr.sample_rate)
    analyzer = si.create_sorting_analyzer(sorting, rec, sparse=True, format="memory", return_in_uV=True)
    analyzer.compute(["random_spikes", "waveforms", "templates", "noise_levels", "spike_amplitudes",
                      "spike_locations", "principal_components"], n_jobs=1, progress_bar=False)
    analyzer.compute("template_metrics", include_multi_channel_metrics=True)
    analyzer.compute("quality_metrics")
    frame = analyzer.get_extension("quality_metrics").get_data()
    frame = frame.join(analyzer.get_extension("template_metrics").get_data())
    return frame, time.perf_counter() - t


SAME_FILTER = "raw traces, high-pass 300 Hz as given to SpikeInterface"


def amplitude_variants(ks: Path, compute_features, gain: float) -> tuple[dict[str, pd.DataFrame], float]:
    """Our amplitude metrics from three sources, and the time of the raw-trace one.

    Generated folders hold templates in uV but a raw file in bits of ``gain``; SpikeInterface gets that
    gain, so our raw-trace amplitudes do too (on real folders one ``gain_uv`` from params.py serves both).
    Their params.py says ``hp_filtered = True``, so by default we read the file unfiltered, while
    SpikeInterface is given a 300 Hz high-pass: the first variant filters like SpikeInterface.
    """
    from phy_plugins.unitrefine.metrics_amplitude import AMPLITUDE_METRICS

    names = list(AMPLITUDE_METRICS)
    params = ks / "params.py"
    text = params.read_text()
    params.write_text(text.replace("hp_filtered = True", "hp_filtered = False"))
    t = time.perf_counter()
    same, _ = compute_features(ks, names=names, gain_uv=gain, raw_amplitudes=True)
    took = time.perf_counter() - t
    params.write_text(text)
    as_is, _ = compute_features(ks, names=names, gain_uv=gain, raw_amplitudes=True)
    kilosort, _ = compute_features(ks, names=names, use_raw=False)
    return {SAME_FILTER: same, "raw traces as params.py says (hp_filtered: no filter)": as_is,
            "Kilosort amplitudes (no raw file)": kilosort}, took


def compare(ours: pd.DataFrame, theirs: pd.DataFrame) -> pd.DataFrame:
    from scipy.stats import spearmanr

    rows = []
    for name in ours.columns:
        col = RENAMED.get(name, name) if name not in theirs.columns else name
        if col not in theirs.columns:
            rows.append({"metric": name, "si_column": "-", "n": 0})
            continue
        a = ours[name]
        b = theirs.loc[ours.index, col].astype(float)
        if name == "peak_trough_ratio" and col != name:
            b = -b
        if name == "amplitude_median":  # SpikeInterface 0.105 keeps the sign; 0.102 models saw magnitudes
            b = b.abs()
        ok = a.notna() & b.notna() & np.isfinite(a) & np.isfinite(b)
        n = int(ok.sum())
        row = {"metric": name, "si_column": col, "n": n, "nan_ours": int(a.isna().sum()),
               "nan_si": int(b.isna().sum())}
        if n >= 3:
            # relative difference; absolute for fractions in [0, 1] (near-zero values blow up ratios)
            scale = 1.0 if name in FRACTIONS else np.maximum(np.abs(b[ok]), 1e-12)
            rel = np.abs(a[ok] - b[ok]) / scale
            varies = a[ok].nunique() > 1 and b[ok].nunique() > 1
            row["spearman"] = float(spearmanr(a[ok], b[ok]).statistic) if varies else np.nan
            row["median_rel_diff"] = float(np.median(rel))
            row["within_1pct"] = float(np.mean(rel <= 0.01))
        rows.append(row)
    return pd.DataFrame(rows)


def check_model_interop(tmp: Path) -> dict:
    """Our model folder loads in SpikeInterface and predicts the same; SpikeInterface's loads in ours."""
    import skops.io as sio
    from spikeinterface.curation import load_model as si_load_model
    from spikeinterface.curation import train_model

    from phy_plugins.unitrefine.model_io import load_model
    from phy_plugins.unitrefine.predict import predict
    from phy_plugins.unitrefine.train import TINY_GRID, search

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(120, 5)), columns=[f"m{i}" for i in range(5)])
    x.index.name = "unit_id"
    y = pd.Series(np.where(x["m0"] + 0.5 * rng.normal(size=120) > 0, "good", "mua"), index=x.index)
    res = search(x, y, grid=TINY_GRID, classifiers=["RandomForestClassifier"], imputers=["median"],
                 scalers=["standard_scaler"], n_jobs=1)
    from phy_plugins.unitrefine.workflows import save_search

    save_search(res, tmp / "ours")
    trusted = sio.get_untrusted_types(file=tmp / "ours" / "best_model.skops")
    si_pipe, si_info = si_load_model(model_folder=tmp / "ours", trusted=trusted)
    ours, _ = predict(load_model(tmp / "ours"), x)
    out = {"si_loads_ours_same_predictions": bool((si_pipe.predict(x.astype("float32")) ==
                                                   res.pipeline.predict(x.astype("float32"))).all()),
           "si_reads_our_label_conversion": si_info["label_conversion"] == {"0": "good", "1": "mua"}}
    csv = tmp / "m.csv"
    x.to_csv(csv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = train_model(mode="csv", metrics_paths=[str(csv)], labels=[list(y)], folder=tmp / "si",
                              metric_names=list(x.columns), imputation_strategies=["median"],
                              scaling_techniques=["standard_scaler"], classifiers=["RandomForestClassifier"],
                              seed=0, verbose=False, overwrite=True, search_kwargs={"n_iter": 2})
    theirs, _ = predict(load_model(tmp / "si"), x)
    expected = [trainer.label_conversion[c] for c in trainer.best_pipeline.predict(x.astype("float32"))]
    out["ours_loads_si_same_predictions"] = theirs["prediction"].tolist() == expected
    out["label_sets"] = [sorted(set(ours["prediction"])), sorted(set(theirs["prediction"]))]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="small")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    from phy_plugins.core.synthetic import generate_dataset, load_ground_truth
    from phy_plugins.unitrefine.metrics_amplitude import AMPLITUDE_METRICS
    from phy_plugins.unitrefine.phy_features import compute_features

    with tempfile.TemporaryDirectory() as tmp:
        ks = generate_dataset(Path(tmp) / "ks", preset=args.preset, seed=args.seed)
        compute_features(ks, names=["num_spikes"])  # imports warm
        t = time.perf_counter()
        ours, report = compute_features(ks)
        ours_s = time.perf_counter() - t
        amps, amps_s = amplitude_variants(ks, compute_features, float(load_ground_truth(ks).get("gain_uv", 1.0)))
        ours[list(AMPLITUDE_METRICS)] = amps[SAME_FILTER]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs, si_s = si_metrics(ks)
        interop = check_model_interop(Path(tmp))
    table = compare(ours, theirs)
    amp_table = pd.concat([compare(v, theirs).assign(source=k) for k, v in amps.items()], ignore_index=True)
    pd.set_option("display.width", 200)
    fmt = {"index": False, "float_format": lambda v: f"{v:.3f}"}
    print(table.to_string(**fmt))
    print(f"\namplitude metrics by source (main table: {SAME_FILTER!r}):")
    print(amp_table.drop(columns="si_column").to_string(**fmt))
    print(f"features: ours {ours_s:.2f} s from the phy folder; SpikeInterface {si_s:.2f} s from the raw file "
          f"(ratio {ours_s / si_s:.2f}); {len(ours)} clusters; amplitude metrics alone (raw traces) {amps_s:.2f} s")
    print(f"model folders: {interop}")
    if args.json:
        args.json.write_text(json.dumps({"ours_s": ours_s, "si_s": si_s, "n_clusters": len(ours),
                                         "amplitudes_s": amps_s,
                                         "table": table.to_dict(orient="records"),
                                         "amplitude_sources": amp_table.to_dict(orient="records"),
                                         "unavailable": report.unavailable, "interop": interop}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
