"""``phy-plugins unitrefine train|predict``: train UnitRefine models and predict cluster labels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from phy_plugins.core.kilosort import DatasetError
from phy_plugins.unitrefine.model_io import ModelError
from phy_plugins.unitrefine.tables import TableError
from phy_plugins.unitrefine.train import CLASSIFIERS, FULL_GRID, IMPUTERS, SCALERS, TINY_GRID, TrainingError

EXPECTED_ERRORS = (ModelError, TableError, TrainingError, DatasetError, OSError)


def _progress(done: int, total: int, text: str) -> None:
    if total:
        print(f"\r[{done}/{total}] {text}".ljust(70), end="", file=sys.stderr, flush=True)
        if done >= total:
            print(file=sys.stderr)


class UsageError(Exception):
    """The command's arguments do not fit together (exit code 2)."""


RAW_AMPLITUDES_HELP = ("amplitude metrics from the filtered raw file, as SpikeInterface computes them (reads the whole "
                       "file; use the same choice for training and prediction)")


def _training_tables(args: argparse.Namespace, label_map: dict[str, str] | None):
    """(metrics, labels, sessions) from ``--metrics``/``--labels`` CSVs or KS_DIRs (sessions None for CSVs)."""
    from phy_plugins.unitrefine import workflows as wf
    from phy_plugins.unitrefine.tables import apply_label_map, read_labels_csv, read_metrics_table

    if args.metrics or args.labels:
        if not (args.metrics and args.labels) or args.ks_dirs:
            raise UsageError("give either KS_DIR... or both --metrics and --labels")
        return read_metrics_table(args.metrics), apply_label_map(read_labels_csv(args.labels), label_map), None
    if not args.ks_dirs:
        raise UsageError("give KS_DIR... or --metrics CSV --labels CSV")
    return wf.labelled_sessions(args.ks_dirs, label_map, raw_amplitudes=args.raw_amplitudes, progress=_progress)


def cmd_train(args: argparse.Namespace) -> int:
    from phy_plugins.unitrefine import workflows as wf
    from phy_plugins.unitrefine.model_io import load_model
    from phy_plugins.unitrefine.tables import parse_label_map
    from phy_plugins.unitrefine.train import describe_config, search

    out = Path(args.out)
    if (out / "best_model.skops").exists() and not args.overwrite:
        raise UsageError(f"{out} already holds a model; choose another --out or add --overwrite")
    label_map = parse_label_map(args.map)
    model = load_model(args.refit, trust=args.trust_model) if args.refit else None
    metrics, labels, sessions = _training_tables(args, label_map)
    if model is not None:  # fast update: the model's pipeline refit on the labels, no search
        wf.refit_folder(model, metrics, labels, out, overwrite=args.overwrite)
        print(f"refitted {args.refit} on {len(labels)} labels: written to {out}")
        return 0
    result = search(metrics, labels, sessions=sessions, progress=_progress, classifiers=args.classifiers,
                    imputers=args.imputers, scalers=args.scalers, grid=TINY_GRID if args.quick else FULL_GRID,
                    folds=args.folds, seed=args.seed, n_jobs=args.jobs)
    wf.save_search(result, out, overwrite=args.overwrite)
    best = result.scores.iloc[0]
    print(f"best: {describe_config(best)}: balanced accuracy {best['balanced_accuracy']:.3f} (cross-validated)")
    if result.loso is not None and len(result.loso):
        print(f"leave-one-session-out balanced accuracy: {result.loso.iloc[-1]['balanced_accuracy']:.3f}")
    print(f"model written to {out} (report: {out / wf.REPORT_FILE})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from phy_plugins.unitrefine import workflows as wf
    from phy_plugins.unitrefine.tables import read_metrics_table

    models = wf.load_models(args.model, trust=args.trust_model)
    for m in models:
        for note in m.notes:
            print(f"note ({m.folder}): {note}", file=sys.stderr)
    report = None
    if args.metrics:
        if args.ks_dir:
            raise UsageError("give KS_DIR or --metrics, not both")
        if not args.out:
            raise UsageError("--metrics needs --out PRED.csv")
        metrics = read_metrics_table(args.metrics)
    elif args.ks_dir:
        metrics, report = wf.folder_features(args.ks_dir, wf.required_features(models),
                                             raw_amplitudes=args.raw_amplitudes, progress=_progress)
    else:
        raise UsageError("give KS_DIR or --metrics CSV")
    pred, checks = wf.predict_table(models, metrics)
    for line in wf.missing_feature_messages(checks, report):
        print(f"warning: {line}", file=sys.stderr)
    for line in report.lines() if report is not None else []:  # where the amplitude metrics came from
        if line.startswith(("source amplitude_median", "approximate amplitude_median")):
            print(f"note: {line}")
    if args.metrics:
        wf.write_prediction_csv(args.out, pred)
        print(f"{len(pred)} predictions written to {args.out}")
    else:
        for p in wf.write_prediction_tsvs(args.ks_dir, pred):
            print(f"wrote {p}")
    counts = pred["prediction"].value_counts().to_dict()
    print("labels: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


def _guard(fn):
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (UsageError, *EXPECTED_ERRORS) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2 if isinstance(exc, UsageError) else 1

    return run


def register(subparsers) -> None:
    """Add ``unitrefine train`` and ``unitrefine predict``."""
    p = subparsers.add_parser("unitrefine", help="UnitRefine models: train from your labels, predict labels")
    sub = p.add_subparsers(dest="unitrefine_command", metavar="{train,predict}")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    t = sub.add_parser("train", help="train a model from phy labels or metrics/labels CSVs")
    t.add_argument("ks_dirs", nargs="*", metavar="KS_DIR", help="phy folders with cluster_group.tsv labels")
    t.add_argument("--out", required=True, help="model folder to write (UnitRefine/SpikeInterface format)")
    t.add_argument("--metrics", help="metrics CSV, one row per unit with cluster_id or unit_id")
    t.add_argument("--labels", help="labels CSV: cluster_id,label (or UnitRefine's labels.csv)")
    t.add_argument("--map", action="append", metavar="LABELS=CLASS",
                   help="map labels to classes, e.g. --map good=good --map mua,noise=other (unmapped are skipped)")
    t.add_argument("--classifiers", nargs="+", default=list(CLASSIFIERS), choices=CLASSIFIERS)
    t.add_argument("--imputers", nargs="+", default=list(IMPUTERS), choices=IMPUTERS)
    t.add_argument("--scalers", nargs="+", default=list(SCALERS), choices=SCALERS)
    t.add_argument("--folds", type=int, default=5)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--jobs", type=int, default=None, help="parallel jobs (default: all cores)")
    t.add_argument("--quick", action="store_true", help="one hyper-parameter set per classifier")
    t.add_argument("--raw-amplitudes", action="store_true", help=RAW_AMPLITUDES_HELP)
    t.add_argument("--overwrite", action="store_true", help="replace an existing model in --out")
    t.add_argument("--refit", metavar="MODEL_DIR",
                   help="fast update: refit this model's pipeline on the labels (no search)")
    t.add_argument("--trust-model", action="store_true", help="with --refit: trust types outside the allow-list")
    t.set_defaults(func=_guard(cmd_train))

    q = sub.add_parser("predict", help="predict labels for a phy folder or a metrics CSV")
    q.add_argument("ks_dir", nargs="?", metavar="KS_DIR")
    q.add_argument("--model", action="append", required=True,
                   help="model folder; give it twice for a cascade (noise/neural, then SUA/MUA)")
    q.add_argument("--metrics", help="metrics CSV instead of a phy folder")
    q.add_argument("--raw-amplitudes", action="store_true", help=RAW_AMPLITUDES_HELP)
    q.add_argument("--out", help="predictions CSV (with --metrics)")
    q.add_argument("--trust-model", action="store_true",
                   help="load types outside the scikit-learn/numpy allow-list (only for models you trust)")
    q.set_defaults(func=_guard(cmd_predict))
