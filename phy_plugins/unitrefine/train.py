"""Train UnitRefine-compatible classifiers: pipeline search, leave-one-session-out check, fast refit.

Search: classifiers x imputers x scalers, each with a small hyper-parameter grid, scored with
stratified k-fold cross-validation (balanced accuracy, macro precision and recall). Tree models
are invariant to per-feature monotonic scaling, so their score is computed once per imputer and
reported for every scaler. The best pipeline is refitted on all labelled units.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from phy_plugins.unitrefine.predict import feature_matrix

CLASSIFIERS = ("RandomForestClassifier", "GradientBoostingClassifier", "LogisticRegression", "MLPClassifier")
IMPUTERS = ("median", "mean", "most_frequent", "knn")
SCALERS = ("standard_scaler", "robust_scaler", "min_max_scaler")
TREE_MODELS = {"RandomForestClassifier", "GradientBoostingClassifier"}
MIN_PER_CLASS = 6

FULL_GRID: dict[str, list[dict]] = {
    "RandomForestClassifier": [
        {"n_estimators": 150, "criterion": c, "min_samples_leaf": leaf, "class_weight": "balanced"}
        for c in ("gini", "entropy") for leaf in (1, 2, 4)
    ],
    "GradientBoostingClassifier": [
        {"n_estimators": 100, "learning_rate": lr, "max_depth": d} for lr in (0.05, 0.1) for d in (2, 3)
    ],
    "LogisticRegression": [{"C": c, "class_weight": "balanced", "max_iter": 2000} for c in (0.01, 0.1, 1.0, 10.0)],
    "MLPClassifier": [
        {"hidden_layer_sizes": h, "alpha": a, "max_iter": 300} for h in ((32,), (64, 32)) for a in (1e-4, 1e-2)
    ],
}
TINY_GRID: dict[str, list[dict]] = {k: v[:1] for k, v in FULL_GRID.items()}


class TrainingError(ValueError):
    """Training cannot proceed; the message says why."""


@dataclass
class SearchResult:
    pipeline: object
    label_conversion: dict[int, object]
    feature_names: list[str]
    scores: pd.DataFrame  # one row per combination, best first (model_accuracies.csv layout)
    confusion: pd.DataFrame
    importances: pd.Series
    loso: pd.DataFrame | None
    x: pd.DataFrame
    y: pd.Series
    seconds: float
    notes: list[str] = field(default_factory=list)

    def report(self) -> str:
        """Short human-readable training report (markdown)."""
        best = self.scores.iloc[0]
        lines = [
            "# UnitRefine training report",
            "",
            f"Units: {len(self.y)}; classes: "
            + ", ".join(f"{self.label_conversion[c]}={n}" for c, n in self.y.value_counts().sort_index().items()),
            f"Best: {best['classifier name']} + {best['imputation_strategy']} imputer + {best['scaling_strategy']}, "
            f"cross-validated balanced accuracy {best['balanced_accuracy']:.3f} "
            f"(precision {best['precision']:.3f}, recall {best['recall']:.3f}); search took {self.seconds:.1f} s",
            "",
        ]
        if self.loso is not None:
            lines += ["## Leave-one-session-out (expected accuracy on a new recording)", "",
                      markdown_table(self.loso), ""]
        importances = self.importances.head(20).rename("importance").rename_axis("feature").reset_index()
        lines += ["## Configurations", "", markdown_table(self.scores.drop(columns=["best_params"])), "",
                  "## Confusion matrix (cross-validated, rows = true)", "",
                  markdown_table(self.confusion.reset_index(names="")), "",
                  "## Feature importances (best pipeline)", "", markdown_table(importances), ""]
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def markdown_table(frame: pd.DataFrame) -> str:
    """A plain markdown table (floats with 3 decimals)."""

    def cell(v):
        return f"{v:.3f}" if isinstance(v, (float, np.floating)) else str(v)

    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    sep = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def describe_config(row) -> str:
    """'classifier + imputer + scaler' of one row of the scores table."""
    return f"{row['classifier name']} + {row['imputation_strategy']} + {row['scaling_strategy']}"


def make_imputer(name: str):
    from sklearn.impute import KNNImputer, SimpleImputer

    if name == "knn":
        return KNNImputer(n_neighbors=5)
    if name in ("median", "mean", "most_frequent"):
        return SimpleImputer(strategy=name)
    raise TrainingError(f"unknown imputation strategy {name!r}; choose from {', '.join(IMPUTERS)}")


def make_scaler(name: str):
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    table = {"standard_scaler": StandardScaler, "robust_scaler": RobustScaler, "min_max_scaler": MinMaxScaler}
    if name not in table:
        raise TrainingError(f"unknown scaler {name!r}; choose from {', '.join(SCALERS)}")
    return table[name]()


def make_classifier(name: str, params: dict, seed: int):
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    table = {"RandomForestClassifier": RandomForestClassifier, "GradientBoostingClassifier": GradientBoostingClassifier,
             "LogisticRegression": LogisticRegression, "MLPClassifier": MLPClassifier}
    if name not in table:
        raise TrainingError(f"unknown classifier {name!r}; choose from {', '.join(CLASSIFIERS)}")
    return table[name](random_state=seed, **params)


def make_pipeline(imputer: str, scaler: str, classifier: str, params: dict, seed: int = 0):
    from sklearn.pipeline import Pipeline

    return Pipeline([("imputer", make_imputer(imputer)), ("scaler", make_scaler(scaler)),
                     ("classifier", make_classifier(classifier, params, seed))])


def encode_labels(labels: pd.Series) -> tuple[pd.Series, dict[int, object]]:
    """Codes follow the sorted label order (as pandas categories, like SpikeInterface)."""
    classes = sorted(labels.unique(), key=lambda v: (str(type(v)), v))
    conv = dict(enumerate(classes))
    inv = {v: k for k, v in conv.items()}
    return labels.map(inv).astype(int), conv


def training_set(metrics: pd.DataFrame, labels: pd.Series, feature_names: list[str] | None = None,
                 min_per_class: int = MIN_PER_CLASS) -> tuple[pd.DataFrame, pd.Series, dict[int, object]]:
    """Align labels with metrics rows, check class sizes, encode labels. Raises :class:`TrainingError`."""
    missing = labels.index.difference(metrics.index)
    if len(missing) == len(labels):
        raise TrainingError(
            f"none of the {len(labels)} labelled ids match the metrics ids (labels: {list(labels.index[:5])}..., "
            f"metrics: {list(metrics.index[:5])}...)")
    notes = []
    if len(missing):
        notes.append(f"{len(missing)} labelled ids have no metrics and are ignored: {list(missing[:10])}")
    labels = labels.loc[labels.index.intersection(metrics.index)]
    counts = labels.value_counts()
    if len(counts) < 2:
        raise TrainingError(f"need at least two classes to train, got {dict(counts)}")
    small = counts[counts < min_per_class]
    if len(small):
        raise TrainingError(
            f"too few labelled units: {', '.join(f'{k}={v}' for k, v in small.items())} "
            f"(need at least {min_per_class} per class; counts {dict(counts)})")
    names = list(feature_names) if feature_names is not None else [
        c for c in metrics.columns if pd.api.types.is_numeric_dtype(metrics[c])]
    x, check = feature_matrix(metrics.loc[labels.index], names)
    keep = [n for n in names if n not in check.missing]
    if not keep:
        raise TrainingError("no usable feature: every metric column is empty")
    frame = pd.DataFrame(x, columns=names, index=labels.index)[keep]
    frame.index.name = "unit_id"
    y, conv = encode_labels(labels)
    return frame, y, conv


def _preprocess(imputer: str, scaler: str | None, x: np.ndarray, train: np.ndarray, test: np.ndarray):
    """Imputer (+ scaler) fitted on the training rows, applied to both (as the pipeline does)."""
    steps = [make_imputer(imputer)] + ([make_scaler(scaler)] if scaler else [])
    a, b = x[train], x[test]
    for step in steps:
        a = step.fit_transform(a)
        b = step.transform(b)
    return a, b


def _fit_predict(clf: str, params: dict, seed: int, xa: np.ndarray, ya: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Fit one classifier on preprocessed training rows; predictions for the test rows."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of small folds
        return make_classifier(clf, params, seed).fit(xa, ya).predict(xb)


def _scores(y_true, y_pred) -> tuple[float, float, float]:
    from sklearn.metrics import balanced_accuracy_score, precision_score, recall_score

    return (balanced_accuracy_score(y_true, y_pred),
            precision_score(y_true, y_pred, average="macro", zero_division=0),
            recall_score(y_true, y_pred, average="macro", zero_division=0))


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def search(
    metrics: pd.DataFrame,
    labels: pd.Series,
    *,
    classifiers=CLASSIFIERS,
    imputers=IMPUTERS,
    scalers=SCALERS,
    grid: dict[str, list[dict]] | None = None,
    folds: int = 5,
    seed: int = 0,
    n_jobs: int | None = None,
    sessions: pd.Series | None = None,
    feature_names: list[str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    backend: str = "threads",
) -> SearchResult:
    """Cross-validated search over pipelines; the best one is refit on all units.

    ``backend`` is joblib's ``prefer`` ("threads" or "processes").
    ``sessions`` (same index as ``labels``) adds a leave-one-session-out evaluation of the best pipeline.
    """
    from joblib import Parallel, delayed
    from sklearn.model_selection import StratifiedKFold

    t0 = time.perf_counter()
    grid = grid or FULL_GRID
    frame, y, conv = training_set(metrics, labels, feature_names)
    x, yv = frame.to_numpy(np.float32), y.to_numpy()
    n_folds = int(min(folds, y.value_counts().min()))
    splits = list(StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(x, yv))
    configs = []
    for clf in classifiers:
        for params in grid.get(clf, [{}]):
            for imp in imputers:
                for sc in ([None] if clf in TREE_MODELS else scalers):
                    configs.append((imp, sc, clf, params))
    tasks = [(c, k) for c in range(len(configs)) for k in range(len(splits))]
    n_jobs = n_jobs or default_jobs()
    # tree models ignore scaling (monotonic per feature): they get the imputed data only
    prep = {(imp, sc, k): _preprocess(imp, sc, x, *splits[k])
            for imp, sc in {(c[0], c[1]) for c in configs} for k in range(len(splits))}
    preds: dict[tuple[int, int], np.ndarray] = {}
    runner = Parallel(n_jobs=n_jobs, return_as="generator", prefer=backend)
    gen = runner(delayed(_fit_predict)(configs[c][2], configs[c][3], seed, prep[(configs[c][0], configs[c][1], k)][0],
                                       yv[splits[k][0]], prep[(configs[c][0], configs[c][1], k)][1])
                 for c, k in tasks)
    for i, ((c, k), pred) in enumerate(zip(tasks, gen), 1):
        preds[(c, k)] = pred
        if progress:
            progress(i, len(tasks), f"cross-validating {configs[c][2]}")
        if cancelled and cancelled():
            raise TrainingError("training cancelled")
    rows = []
    for c, (imp, sc, clf, params) in enumerate(configs):
        yp = np.empty_like(yv)
        for k, (_, test) in enumerate(splits):
            yp[test] = preds[(c, k)]
        per_fold = [_scores(yv[test], preds[(c, k)]) for k, (_, test) in enumerate(splits)]
        ba, pr, rc = np.mean(per_fold, axis=0)
        for s in ([sc] if sc else scalers):
            rows.append({"classifier name": clf, "imputation_strategy": imp, "scaling_strategy": s,
                         "balanced_accuracy": ba, "precision": pr, "recall": rc, "best_params": params,
                         "_pred": yp})
    table = pd.DataFrame(rows)
    # keep the best hyper-parameters of each (classifier, imputer, scaler)
    table = table.sort_values("balanced_accuracy", ascending=False, kind="stable")
    table = table.drop_duplicates(["classifier name", "imputation_strategy", "scaling_strategy"]).reset_index(drop=True)
    table["model_id"] = np.arange(len(table))
    best = table.iloc[0]
    pipeline = make_pipeline(best["imputation_strategy"], best["scaling_strategy"], best["classifier name"],
                             best["best_params"], seed)
    pipeline.fit(frame, yv)
    from sklearn.metrics import confusion_matrix

    labels_sorted = [conv[k] for k in sorted(conv)]
    cm = pd.DataFrame(confusion_matrix(yv, best["_pred"], labels=sorted(conv)),
                      index=[f"true {v}" for v in labels_sorted], columns=[f"pred {v}" for v in labels_sorted])
    importances = _importances(pipeline, frame, yv, seed)
    loso = None
    if sessions is not None and sessions.loc[frame.index].nunique() > 1:
        loso = leave_one_session_out(frame, y, sessions.loc[frame.index], best, seed)
    scores = table.drop(columns=["_pred"])[["classifier name", "imputation_strategy", "scaling_strategy",
                                            "balanced_accuracy", "precision", "recall", "model_id", "best_params"]]
    notes = [f"{n_folds}-fold stratified cross-validation, {len(configs)} configurations, {n_jobs} jobs",
             "tree models do not depend on feature scaling: one score serves the three scalers"]
    return SearchResult(pipeline=pipeline, label_conversion=conv, feature_names=list(frame.columns), scores=scores,
                        confusion=cm, importances=importances, loso=loso, x=frame, y=y,
                        seconds=time.perf_counter() - t0, notes=notes)


def _importances(pipeline, frame: pd.DataFrame, y: np.ndarray, seed: int) -> pd.Series:
    clf = pipeline.steps[-1][1]
    imp = getattr(clf, "feature_importances_", None)
    if imp is None:
        from sklearn.inspection import permutation_importance

        imp = permutation_importance(pipeline, frame, y, n_repeats=5, random_state=seed,
                                     scoring="balanced_accuracy").importances_mean
    return pd.Series(imp, index=frame.columns).sort_values(ascending=False)


def leave_one_session_out(frame: pd.DataFrame, y: pd.Series, sessions: pd.Series, best, seed: int) -> pd.DataFrame:
    """Train on all sessions but one, test on the held-out one, for every session."""
    rows = []
    for s in sorted(sessions.unique(), key=str):
        test = (sessions == s).to_numpy()
        if len(np.unique(y[~test])) < 2:
            continue
        pipe = make_pipeline(best["imputation_strategy"], best["scaling_strategy"], best["classifier name"],
                             best["best_params"], seed)
        pipe.fit(frame[~test], y[~test])
        ba, pr, rc = _scores(y[test], pipe.predict(frame[test]))
        rows.append({"held_out_session": str(s), "n_units": int(test.sum()), "balanced_accuracy": ba,
                     "precision": pr, "recall": rc})
    out = pd.DataFrame(rows)
    if len(out):
        out.loc[len(out)] = {"held_out_session": "mean", "n_units": int(out["n_units"].sum()),
                             "balanced_accuracy": out["balanced_accuracy"].mean(),
                             "precision": out["precision"].mean(), "recall": out["recall"].mean()}
    return out


def refit(pipeline, metrics: pd.DataFrame, labels: pd.Series,
          label_conversion: dict) -> tuple[object, pd.DataFrame, pd.Series]:
    """Fast update: same pipeline and hyper-parameters, refitted on new labels (no search)."""
    from sklearn.base import clone

    names = [str(n) for n in pipeline.feature_names_in_]
    inv = {v: k for k, v in label_conversion.items()}
    unknown = sorted(set(labels.unique()) - set(inv), key=str)
    if unknown:
        raise TrainingError(f"labels {unknown} are not classes of this model ({list(inv)})")
    frame, y, _ = training_set(metrics, labels, names)
    frame = frame.reindex(columns=names)
    codes = labels.loc[frame.index].map(inv).astype(int)
    new = clone(pipeline).fit(frame, codes.to_numpy())
    return new, frame, codes
