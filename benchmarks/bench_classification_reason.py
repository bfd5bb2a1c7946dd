"""Benchmark: reasons for 100k units, vectorised engine vs a per-unit loop like seed 001's notebook.

    python benchmarks/bench_classification_reason.py [--units 100000] [--repeats 5] [--seed 0]

Both sides start from the same metrics DataFrame and saved-param dict and produce, for every
unit, the label and its reasons:

* ours: ``evaluate()`` (fail flags, label, main reason) + ``all_reasons`` (every failed rule
  with value and threshold);
* peer (seed 001 notebook): ``bc.get_quality_unit_type`` for the labels, pandas comparisons per
  rule for the fail flags, then a Python loop over units building the reason strings.

Timings are medians over ``--repeats`` runs in the same process (2-core machine, noisy).
The script also checks that our labels equal bombcell's on the whole table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from phy_plugins.classification_reason.engine import evaluate  # noqa: E402
from phy_plugins.classification_reason.rules import RULES  # noqa: E402

GOOD = dict(nPeaks=1, nTroughs=1, waveformDuration_peakTrough=500, waveformBaselineFlatness=0.1,
            scndPeakToTroughRatio=0.2, spatialDecaySlope=0.05, troughToPeak2Ratio=10,
            mainPeak_before_width=10, mainTrough_width=10, peak1ToPeak2Ratio=1,
            mainPeakToTroughRatio=0.3, percentageSpikesMissing_gaussian=5, nSpikes=2000,
            fractionRPVs_estimatedTauR=0.01, presenceRatio=0.95, rawAmplitude=80, signalToNoiseRatio=10,
            maxDriftEstimate=10, isolationDistance=50, Lratio=0.05)


def make_table(n: int, seed: int, param: dict) -> pd.DataFrame:
    """Units that are mostly clean, each metric pushed past its threshold with 8% probability."""
    rng = np.random.default_rng(seed)
    cols = {"phy_clusterID": np.arange(n)}
    for m, good in GOOD.items():
        thr = next((param[r.param] for r in RULES if r.metric == m and r.param), good)
        v = np.full(n, float(good)) * rng.uniform(0.9, 1.1, n)
        bad = rng.random(n) < 0.08
        v[bad] = thr + (thr - good) * rng.uniform(0.05, 3.0, bad.sum())
        v[rng.random(n) < 0.01] = np.nan
        cols[m] = v
    cols["nSpikes"] = np.round(cols["nSpikes"])
    cols["RPV_status"] = rng.choice([-1, 0, 1], n)
    return pd.DataFrame(cols)


def peer_seed001(qm_df: pd.DataFrame, param: dict):
    """The notebook's approach: bombcell labels, pandas flags, then a per-unit loop."""
    from bombcell.quality_metrics import get_quality_unit_type

    with contextlib.redirect_stdout(io.StringIO()):
        _, labels = get_quality_unit_type(param, qm_df)

    def col(name):
        return qm_df[name] if name in qm_df.columns else pd.Series(np.nan, index=qm_df.index)

    flags = {}
    for r in RULES:
        if r.op == "isnan" or (r.switches and not all(bool(param[k]) == v for k, v in r.switches)):
            continue
        c = col(r.metric)
        flags[(r.block, r.name, r.metric, r.param)] = np.asarray(
            (c > param[r.param]) if r.op == ">" else (c < param[r.param]), dtype=bool)
    values = {m: qm_df[m].to_numpy() for m in qm_df.columns}
    out = []
    for i in range(len(qm_df)):
        label = labels[i]
        hits = [f"{b}: {name} ({values[m][i]:.3g}{'>' if '>' in name else '<'}{param[p]:.3g})"
                for (b, name, m, p), f in flags.items() if f[i]]
        if label == "GOOD":
            out.append("GOOD: passed all thresholds")
        else:
            out.append(" | ".join(hits))
    return labels, out


def ours(qm_df: pd.DataFrame, param: dict):
    ev = evaluate(qm_df, param, qm_df["phy_clusterID"].to_numpy())
    return ev, ev.all_reasons


def timed(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import bombcell as bc

    param = bc.get_default_parameters("/nonexistent-ks", kilosort_version=4)
    param.update(extractRaw=True, computeDrift=True, computeDistanceMetrics=True)
    qm_df = make_table(args.units, args.seed, param)

    t_main, _, ev = timed(lambda: evaluate(qm_df, param, qm_df["phy_clusterID"].to_numpy()), args.repeats)
    t_ours, t_ours_min, (ev2, _) = timed(lambda: ours(qm_df, param), args.repeats)
    t_peer, t_peer_min, (labels, _) = timed(lambda: peer_seed001(qm_df, param), max(1, min(args.repeats, 3)))
    agree = bool(np.array_equal(ev2.label, labels))
    counts = pd.Series(ev2.label).value_counts().to_dict()

    print(f"# bench_classification_reason ({args.units} units, seed {args.seed})")
    print(f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
          f"bombcell {getattr(bc, '__version__', '?')}, {platform.machine()}")
    print(f"labels: {counts}; labels equal bombcell's: {agree}")
    print("| what | median s | min s |")
    print("|---|---|---|")
    print(f"| ours: evaluate (flags, labels, main reasons) | {t_main:.3f} | |")
    print(f"| ours: evaluate + all reasons with values | {t_ours:.3f} | {t_ours_min:.3f} |")
    print(f"| peer: seed-001 per-unit loop (bombcell labels + loop) | {t_peer:.3f} | {t_peer_min:.3f} |")
    print(f"speed-up (median, full output): {t_peer / t_ours:.1f}x; "
          f"main reasons only: {t_peer / t_main:.1f}x")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
