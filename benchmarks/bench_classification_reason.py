"""Benchmark: reasons for 100k units, vectorised engine vs a per-unit loop like seed 001's notebook.

    python benchmarks/bench_classification_reason.py [--units 100000] [--repeats 5] [--seed 0]

Both sides start from the same metrics DataFrame and saved-param dict and produce, for every
unit, the label and its reasons:

* ours: ``evaluate()`` (fail flags, label, main reason) + ``all_reasons`` (every failed rule
  with value and threshold);
* peer (seed 001 notebook): ``bc.get_quality_unit_type`` for the labels, pandas comparisons per
  rule for the fail flags, then a Python loop over units building the reason strings.

Timings are medians over ``--repeats`` rounds in the same process; each round runs every
variant once, so machine noise (2 cores, shared) hits all of them alike. The engine's numba
kernel is compiled (or loaded from numba's cache) by one untimed call before the rounds.
The script also checks that our labels equal bombcell's on the whole table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from phy_plugins.classification_reason.engine import evaluate  # noqa: E402
from phy_plugins.classification_reason.rules import CLEAN_UNIT, RULES  # noqa: E402


def make_table(n: int, seed: int, param: dict) -> pd.DataFrame:
    """Units that are mostly clean, each metric pushed past its threshold with 8% probability."""
    rng = np.random.default_rng(seed)
    cols = {"phy_clusterID": np.arange(n)}
    for m, good in CLEAN_UNIT.items():
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
    """The seed-001 notebook's method: bombcell labels, pandas fail flags, then a per-unit loop.

    Same structure as the notebook (flags as dicts of numpy arrays, ``reasons_for_unit(i)`` called
    for every unit); rule names follow this project's vocabulary.
    """
    from bombcell.quality_metrics import get_quality_unit_type

    with contextlib.redirect_stdout(io.StringIO()):
        _, labels = get_quality_unit_type(param, qm_df)
    df = qm_df.copy()
    df["bombcell_label"] = labels

    def col(name):
        return df[name] if name in df.columns else pd.Series(np.nan, index=df.index)

    blocks = {"NOISE": {}, "MUA": {}, "NON-SOMA": {}}
    for r in RULES:
        if r.op == "isnan" or (r.switches and not all(bool(param[k]) == v for k, v in r.switches)):
            continue
        c = col(r.metric)
        blocks[r.block][r.name] = (c > param[r.param]) if r.op == ">" else (c < param[r.param])
    noise_np = {k: np.asarray(v, dtype=bool) for k, v in blocks["NOISE"].items()}
    mua_np = {k: np.asarray(v, dtype=bool) for k, v in blocks["MUA"].items()}
    nonsoma_np = {k: np.asarray(v, dtype=bool) for k, v in blocks["NON-SOMA"].items()}
    labels_np = df["bombcell_label"].astype(str).to_numpy()

    def reasons_for_unit(i: int) -> str:
        label = labels_np[i]
        reasons = []
        noise_hits = [k for k, v in noise_np.items() if bool(v[i])]
        mua_hits = [k for k, v in mua_np.items() if bool(v[i])]
        nonsoma_hits = [k for k, v in nonsoma_np.items() if bool(v[i])]
        if label == "NOISE":
            reasons.extend([f"NOISE: {r}" for r in noise_hits] or ["NOISE: classified by noise mask"])
        elif label in ("MUA", "NON-SOMA MUA"):
            reasons.extend([f"MUA: {r}" for r in mua_hits] or ["MUA: classified by MUA mask"])
        elif label in ("NON-SOMA", "NON-SOMA GOOD"):
            reasons.extend([f"NON-SOMA: {r}" for r in nonsoma_hits] or ["NON-SOMA: non-somatic waveform rule"])
        if label == "GOOD":
            reasons.append("GOOD: passed NOISE and MUA thresholds, and not non-somatic")
        return " | ".join(reasons)

    return labels, [reasons_for_unit(i) for i in range(len(df))]


def ours_main(qm_df: pd.DataFrame, param: dict):
    """Flags, labels, main reasons (+ values, thresholds and distances, lazily)."""
    return evaluate(qm_df, param, qm_df["phy_clusterID"].to_numpy())


def ours_list(qm_df: pd.DataFrame, param: dict):
    """As the notebook's output: every failed rule's name per unit (plus main reasons)."""
    ev = ours_main(qm_df, param)
    return ev, ev.reason_list


def ours_values(qm_df: pd.DataFrame, param: dict):
    """Every failed rule with its value and threshold, e.g. ``(0.32>0.1)``."""
    ev = ours_main(qm_df, param)
    return ev, ev.all_reasons


def timed_round_robin(fns: dict, repeats: int) -> dict:
    """Run every function once per round (so machine noise hits all alike); median/min per name."""
    times: dict = {name: [] for name in fns}
    results: dict = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(t), min(t), results[name]) for name, t in times.items()}


def _load() -> str:
    """The machine's load average, to report with the timings."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


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

    names = {
        "main": "ours: evaluate (flags, labels, main reasons)",
        "list": "ours: evaluate + all failed-rule names (the notebook's output)",
        "values": "ours: evaluate + all reasons with values",
        "peer": "peer: seed-001 notebook (bombcell labels, pandas flags, per-unit loop)",
    }
    t0 = time.perf_counter()
    evaluate(make_table(10, args.seed, param), param)  # numba compile or cache load, not timed
    warm_up = time.perf_counter() - t0
    load_before = _load()
    res = timed_round_robin({
        "main": lambda: ours_main(qm_df, param),
        "list": lambda: ours_list(qm_df, param),
        "values": lambda: ours_values(qm_df, param),
        "peer": lambda: peer_seed001(qm_df, param),
    }, args.repeats)
    t_peer = res["peer"][0]
    ev, labels = res["main"][2], res["peer"][2][0]
    agree = bool(np.array_equal(ev.label, labels))
    counts = pd.Series(ev.label).value_counts().to_dict()

    print(f"# bench_classification_reason ({args.units} units, seed {args.seed}, {args.repeats} repeats)")
    print(f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
          f"bombcell {getattr(bc, '__version__', '?')}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"labels: {counts}; labels equal bombcell's: {agree}")
    print(f"kernel warm-up before the rounds (numba compile, or load from its cache): {warm_up:.2f} s")
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {_load()}")
    print("| what | median s | min s | peer / this (median) |")
    print("|---|---|---|---|")
    for key, name in names.items():
        med, mn, _ = res[key]
        print(f"| {name} | {med:.4f} | {mn:.4f} | {t_peer / med:.1f}x |")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
