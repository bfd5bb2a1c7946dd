"""Audit report: the seed-001 plots as PNG files plus one self-contained HTML page.

Tables are built from the engine's fail flags (no string parsing); figures use matplotlib's
object API with the Agg canvas, so no GUI backend is touched.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_write_bytes, atomic_write_text
from .engine import CANDIDATES, Evaluation

CLASS_ORDER = ("GOOD", "MUA", "NOISE", "NON-SOMA", "NON-SOMA GOOD", "NON-SOMA MUA", "")


@dataclass
class AuditTables:
    """Counts behind the figures."""

    classes: list[str]  # present labels, in CLASS_ORDER
    class_counts: np.ndarray  # (n_classes,)
    reasons: list[str]  # candidate names with block prefix
    reason_counts: np.ndarray  # (n_reasons,) units failing each reason
    reason_by_class: np.ndarray  # (n_reasons, n_classes)
    reasons_per_unit: dict[str, np.ndarray]  # class -> number of reasons of each unit
    cooccurrence: np.ndarray  # (n_reasons, n_reasons)


def audit_tables(ev: Evaluation) -> AuditTables:
    """Vectorised counts: reason x class, co-occurrence, reasons per unit."""
    labels = ev.label
    present = set(labels.tolist())
    classes = [c for c in CLASS_ORDER if c in present]
    onehot = np.stack([labels == c for c in classes], axis=1).astype(np.int64) if classes else np.zeros((0, 0))
    fails = (ev.candidate_fails & ~ev.empty[:, None]).astype(np.int64)
    reasons = [f"{c.block}: {c.name}" if len(c.rules) == 1 else f"{c.block}: AND group (A&B&C&D)"
               for c in CANDIDATES]
    per_unit = fails.sum(axis=1)
    return AuditTables(
        classes=classes,
        class_counts=onehot.sum(axis=0) if classes else np.zeros(0, int),
        reasons=reasons,
        reason_counts=fails.sum(axis=0),
        reason_by_class=fails.T @ onehot if classes else np.zeros((len(reasons), 0), int),
        reasons_per_unit={c: per_unit[labels == c] for c in classes},
        cooccurrence=fails.T @ fails,
    )


def _label(c: str) -> str:
    return c if c else "(empty)"


def _top(t: AuditTables, k: int) -> np.ndarray:
    order = np.argsort(-t.reason_counts, kind="stable")
    return order[t.reason_counts[order] > 0][:k]


def _new_fig(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


def _empty(ax, text: str = "no failed rules") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.set_axis_off()


def _fig_classes(t: AuditTables):
    fig = _new_fig(13, 4.5)
    a, b = fig.subplots(1, 2)
    names = [_label(c) for c in t.classes]
    a.bar(names, t.class_counts)
    a.set_title("Unit counts by bombcell class")
    a.set_ylabel("n units")
    a.tick_params(axis="x", rotation=30)
    if t.class_counts.sum():
        b.pie(t.class_counts, labels=names, autopct="%1.1f%%", startangle=90)
    b.set_title("Class proportion")
    return fig


def _fig_top_reasons(t: AuditTables):
    fig = _new_fig(11, 5)
    ax = fig.subplots()
    top = _top(t, 15)[::-1]
    if top.size:
        ax.barh([t.reasons[i] for i in top], t.reason_counts[top])
        ax.set_xlabel("n units failing")
    else:
        _empty(ax)
    ax.set_title("Top reasons (overall)")
    return fig


def _fig_stacked(t: AuditTables):
    fig = _new_fig(12, 6)
    ax = fig.subplots()
    top = _top(t, 12)
    if top.size and t.classes:
        x = np.arange(top.size)
        bottom = np.zeros(top.size)
        for j, c in enumerate(t.classes):
            vals = t.reason_by_class[top, j]
            ax.bar(x, vals, bottom=bottom, label=_label(c))
            bottom += vals
        ax.set_xticks(x)
        ax.set_xticklabels([t.reasons[i] for i in top], rotation=60, ha="right", fontsize=8)
        ax.legend(fontsize=8)
        ax.set_ylabel("count")
    else:
        _empty(ax)
    ax.set_title("Top reasons split by class (stacked)")
    return fig


def _heatmap(fig, ax, values: np.ndarray, ylabels: list[str], xlabels: list[str], fontsize: int = 8,
             xrotation: int = 30) -> None:
    im = ax.imshow(values, aspect="auto")
    ax.set_yticks(np.arange(len(ylabels)))
    ax.set_yticklabels(ylabels, fontsize=fontsize)
    ax.set_xticks(np.arange(len(xlabels)))
    ax.set_xticklabels(xlabels, rotation=xrotation, ha="right", fontsize=fontsize)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def _fig_heatmap(t: AuditTables):
    fig = _new_fig(10, 7)
    ax = fig.subplots()
    top = _top(t, 20)
    if top.size and t.classes:
        _heatmap(fig, ax, t.reason_by_class[top], [t.reasons[i] for i in top], [_label(c) for c in t.classes])
    else:
        _empty(ax)
    ax.set_title("Reason x class (top 20 reasons)")
    return fig


def _fig_per_unit(t: AuditTables):
    fig = _new_fig(8, 4.5)
    ax = fig.subplots()
    data = [t.reasons_per_unit[c] for c in t.classes]
    if any(len(d) for d in data):
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(np.arange(1, len(data) + 1))
        ax.set_xticklabels([_label(c) for c in t.classes])
        ax.set_ylabel("n failed rules")
    else:
        _empty(ax, "no units")
    ax.set_title("Failed rules per unit by class")
    return fig


def _fig_per_class(t: AuditTables):
    fig = _new_fig(16, 10)
    axes = fig.subplots(2, 2).ravel()
    for ax, c in zip(axes, ("GOOD", "MUA", "NOISE", "NON-SOMA"), strict=True):
        cols = [j for j, k in enumerate(t.classes) if c in k]
        counts = t.reason_by_class[:, cols].sum(axis=1) if cols else np.zeros(len(t.reasons))
        order = np.argsort(-counts, kind="stable")
        order = order[counts[order] > 0][:10][::-1]
        if order.size:
            ax.barh([t.reasons[i] for i in order], counts[order])
            ax.tick_params(axis="y", labelsize=7)
        else:
            _empty(ax)
        ax.set_title(f"Top reasons for {c}")
        ax.set_xlabel("count")
    return fig


def _fig_cooccurrence(t: AuditTables):
    fig = _new_fig(10, 8)
    ax = fig.subplots()
    top = _top(t, 12)
    if top.size:
        names = [t.reasons[i] for i in top]
        _heatmap(fig, ax, t.cooccurrence[np.ix_(top, top)], names, names, fontsize=7, xrotation=60)
    else:
        _empty(ax)
    ax.set_title("Reason co-occurrence (units failing both)")
    return fig


FIGURES = (
    ("class_counts", "Class counts and proportions", _fig_classes),
    ("top_reasons", "Top reasons overall", _fig_top_reasons),
    ("reasons_by_class_stacked", "Reasons stacked by class", _fig_stacked),
    ("reason_class_heatmap", "Reason x class heatmap", _fig_heatmap),
    ("reasons_per_unit", "Reasons per unit by class", _fig_per_unit),
    ("top_reasons_per_class", "Top reasons per class", _fig_per_class),
    ("reason_cooccurrence", "Reason co-occurrence", _fig_cooccurrence),
)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _units_table(ev: Evaluation) -> str:
    rows = []
    for i in range(len(ev)):
        saved = "" if ev.saved_label is None else ev.saved_label[i]
        rows.append(
            f"<tr><td>{int(ev.cluster_ids[i])}</td><td>{html.escape(_label(ev.label[i]))}</td>"
            f"<td>{html.escape(_label(saved))}</td><td>{html.escape(ev.main_reason[i])}</td>"
            f"<td>{html.escape(ev.all_reasons[i])}</td></tr>")
    return ("<table><tr><th>cluster</th><th>label</th><th>bombcell saved</th><th>main reason</th>"
            "<th>all reasons</th></tr>" + "".join(rows) + "</table>")


def write_report(ev: Evaluation, out_dir: str | Path, title: str = "bombcell classification audit",
                 max_table_rows: int = 5000) -> Path:
    """Write ``<name>.png`` for each figure, ``reasons_audit.csv`` and ``report.html``; return the HTML path."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t = audit_tables(ev)
    sections = []
    for name, caption, make in FIGURES:
        data = _png(make(t))
        atomic_write_bytes(out / f"{name}.png", data)
        b64 = base64.b64encode(data).decode("ascii")
        sections.append(f"<h2>{html.escape(caption)}</h2><img alt='{name}' src='data:image/png;base64,{b64}'>")
    audit = pd.DataFrame({
        "cluster_id": ev.cluster_ids, "label": ev.label,
        "bombcell_label": ev.saved_label if ev.saved_label is not None else "",
        "status": ev.status, "main_reason": ev.main_reason, "all_reasons": ev.all_reasons,
    })
    atomic_write_text(out / "reasons_audit.csv", audit.to_csv(index=False))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in ev.notes)
    counts = "".join(f"<tr><td>{html.escape(_label(c))}</td><td>{n}</td></tr>"
                     for c, n in zip(t.classes, t.class_counts.tolist(), strict=True))
    table = _units_table(ev) if len(ev) <= max_table_rows else (
        f"<p>{len(ev)} units: see reasons_audit.csv for the per-unit table.</p>")
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} img{{max-width:100%}}
table{{border-collapse:collapse;font-size:12px}} td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}</style>
</head><body><h1>{html.escape(title)}</h1>
<p>{len(ev)} units. Reasons recomputed rule by rule from bombcell's saved metrics and parameters.</p>
<h2>Notes</h2><ul>{notes}</ul>
<h2>Classes</h2><table><tr><th>class</th><th>units</th></tr>{counts}</table>
{''.join(sections)}
<h2>Per unit</h2>{table}
</body></html>
"""
    return atomic_write_text(out / "report.html", page)
