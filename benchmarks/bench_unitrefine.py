"""Benchmark the unitrefine plugin against SpikeInterface in the same run.

1. Training on the UnitRefine tutorial metrics (../shared): our full search vs SpikeInterface's
   ``train_model`` on the same data and grid; both best pipelines scored on the same held-out 20 %.
2. Prediction for 10,000 clusters: ours vs SpikeInterface's ``predict_labels`` code path.
3. Transfer on generated data: train on one generated session, predict another seed.

    python benchmarks/bench_unitrefine.py [--skip-si] [--si-n-iter 25] [--jobs 2]

Needs the 'bench' extra (spikeinterface) for the SpikeInterface columns.
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
SHARED = ROOT.parent / "shared" / "data" / "unitrefine_tutorial"
GRID = dict(classifiers=["RandomForestClassifier", "GradientBoostingClassifier", "LogisticRegression", "MLPClassifier"],
            imputers=["median", "mean", "most_frequent", "knn"],
            scalers=["standard_scaler", "robust_scaler", "min_max_scaler"])


def tutorial_data() -> tuple[pd.DataFrame, pd.Series]:
    from phy_plugins.unitrefine.tables import read_labels_csv, read_metrics_table

    x = read_metrics_table(SHARED / "quality_metrics.csv")
    groups = read_labels_csv(SHARED / "cluster_group.tsv")
    y = (groups.loc[x.index] == "good").astype(int)  # the tutorial's classes: 1 = good, 0 = mua or noise
    return x, y


def holdout_ba(pipeline, x: pd.DataFrame, y: pd.Series, names) -> float:
    from sklearn.metrics import balanced_accuracy_score

    from phy_plugins.unitrefine.predict import feature_matrix

    m, _ = feature_matrix(x, list(names))
    return float(balanced_accuracy_score(y, pipeline.predict(pd.DataFrame(m, columns=list(names)))))


def bench_training(args) -> dict:
    from sklearn.model_selection import train_test_split

    from phy_plugins.unitrefine.train import FULL_GRID, describe_config, search

    x, y = tutorial_data()
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=args.seed, stratify=y)
    out = {"n_train": len(y_tr), "n_holdout": len(y_te), "grid": GRID}
    t = time.perf_counter()
    res = search(x_tr, y_tr, grid=FULL_GRID, n_jobs=args.jobs, seed=args.seed, **GRID)
    out["ours_s"] = time.perf_counter() - t
    best = res.scores.iloc[0]
    out["ours_best"] = describe_config(best)
    out["ours_cv_ba"] = float(best["balanced_accuracy"])
    out["ours_holdout_ba"] = holdout_ba(res.pipeline, x_te, y_te, res.feature_names)
    out["ours_n_configs"] = int(res.notes[0].split(",")[1].split()[0])
    print(f"ours: {out['ours_s']:.1f} s, best {out['ours_best']}, CV BA {out['ours_cv_ba']:.3f}, "
          f"holdout BA {out['ours_holdout_ba']:.3f}", flush=True)
    if args.skip_si:
        return out
    from spikeinterface.curation import train_model

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "train.csv"
        x_tr.to_csv(csv)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = train_model(mode="csv", metrics_paths=[str(csv)], labels=[list(y_tr)], folder=Path(tmp) / "si",
                                  metric_names=list(x.columns), imputation_strategies=GRID["imputers"],
                                  scaling_techniques=GRID["scalers"], classifiers=GRID["classifiers"],
                                  seed=args.seed, verbose=False, overwrite=True, n_jobs=args.jobs,
                                  search_kwargs={"n_iter": args.si_n_iter, "cv": 5, "scoring": "balanced_accuracy"})
        out["si_s"] = time.perf_counter() - t
    best = trainer.test_accuracies_df.iloc[0]
    out["si_best"] = describe_config(best)
    out["si_reported_ba"] = float(best["balanced_accuracy"])  # chosen on its own 20 % test split
    out["si_holdout_ba"] = holdout_ba(trainer.best_pipeline, x_te, y_te, list(x.columns))
    out["time_ratio_ours_over_si"] = out["ours_s"] / out["si_s"]
    print(f"SpikeInterface: {out['si_s']:.1f} s, best {out['si_best']}, reported BA {out['si_reported_ba']:.3f}, "
          f"holdout BA {out['si_holdout_ba']:.3f}; time ratio ours/SI {out['time_ratio_ours_over_si']:.3f}",
          flush=True)
    return out


def bench_prediction(args) -> dict:
    from phy_plugins.unitrefine.model_io import load_model
    from phy_plugins.unitrefine.predict import predict

    model = load_model(SHARED)
    base = pd.read_csv(SHARED / "quality_metrics.csv", index_col=0)
    rng = np.random.default_rng(0)
    rows = base.sample(10_000, replace=True, random_state=0).reset_index(drop=True)
    rows = rows * rng.normal(1.0, 0.05, size=rows.shape)
    rows.index.name = "cluster_id"

    def best_of(fn, n=5):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    out = {"n_clusters": len(rows), "ours_s": best_of(lambda: predict(model, rows))}
    if not args.skip_si:
        from spikeinterface.curation.model_based_curation import ModelBasedClassification

        def si_predict():
            clf = object.__new__(ModelBasedClassification)  # its predict path without an analyzer
            clf.sorting_analyzer, clf.pipeline = None, model.pipeline
            clf.required_metrics, clf.unit_ids = model.pipeline.feature_names_in_, rows.index
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return clf.predict_labels(metrics=rows, model_info=model.info, set_predictions_as_properties=False)

        ours, _ = predict(model, rows)
        theirs = si_predict()
        out["same_labels_as_si"] = bool((ours["prediction"].to_numpy() == theirs["prediction"].to_numpy()).all())
        diff = np.abs(ours["confidence"].to_numpy() - theirs["probability"].to_numpy())
        out["max_conf_diff_vs_si"] = float(diff.max())
        out["si_s"] = best_of(si_predict)
        out["time_ratio_ours_over_si"] = out["ours_s"] / out["si_s"]
    print(f"prediction of 10,000 clusters: {out}", flush=True)
    return out


def bench_transfer(args) -> dict:
    from sklearn.metrics import balanced_accuracy_score

    from phy_plugins.core.synthetic import generate_dataset
    from phy_plugins.unitrefine.demo import truth_labels
    from phy_plugins.unitrefine.model_io import UnitRefineModel
    from phy_plugins.unitrefine.phy_features import compute_features
    from phy_plugins.unitrefine.predict import predict
    from phy_plugins.unitrefine.train import FULL_GRID, search

    out = {"pairs": []}
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {s: generate_dataset(Path(tmp) / f"s{s}", seed=s) for s in (0, 1, 2, 3)}
        truth = {s: truth_labels(d) for s, d in sessions.items()}
        t = time.perf_counter()
        feats = {s: compute_features(d)[0] for s, d in sessions.items()}
        out["features_s_per_session"] = (time.perf_counter() - t) / len(sessions)
        for train_seed, test_seed in ((0, 1), (2, 3), (1, 0)):
            res = search(feats[train_seed], truth[train_seed], grid=FULL_GRID, n_jobs=args.jobs, **GRID)
            model = UnitRefineModel(res.pipeline, {"label_conversion": {str(k): v for k, v in
                                                                        res.label_conversion.items()}})
            pred, _ = predict(model, feats[test_seed])
            ba = balanced_accuracy_score(truth[test_seed].loc[pred.index], pred["prediction"])
            best = res.scores.iloc[0]
            out["pairs"].append({"train_seed": train_seed, "test_seed": test_seed, "n_units": len(pred),
                                 "cv_ba": float(best["balanced_accuracy"]), "transfer_ba": float(ba),
                                 "best": f"{best['classifier name']} + {best['imputation_strategy']}"})
            print(out["pairs"][-1], flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skip-si", action="store_true", help="only our side (no spikeinterface needed)")
    p.add_argument("--si-n-iter", type=int, default=25, help="SpikeInterface's random-search size (its default 25)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=["training", "prediction", "transfer"], action="append")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    parts = args.only or ["prediction", "transfer", "training"]
    results = {}
    if not SHARED.is_dir():
        print(f"{SHARED} absent: tutorial benchmarks skipped")
        parts = [x for x in parts if x == "transfer"]
    for part in parts:
        results[part] = {"training": bench_training, "prediction": bench_prediction,
                         "transfer": bench_transfer}[part](args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
