"""CLI: ``phy-plugins reasons KS_DIR...`` and ``phy-plugins reasons-report KS_DIR --out DIR``."""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path


def _expand(patterns: list[str]) -> list[Path]:
    """Folders from paths or glob patterns (quoted globs are expanded here), in order, no repeats."""
    out: list[Path] = []
    for pat in patterns:
        hits = sorted(glob.glob(pat)) if glob.has_magic(pat) else [pat]
        if not hits:
            print(f"warning: no folder matches {pat!r}", file=sys.stderr)
        for h in hits:
            p = Path(h)
            if p not in out:
                out.append(p)
    return out


def _progress(items: list[Path]):
    if len(items) < 2:
        return items
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with bombcell
        return items
    return tqdm(items, desc="reasons", unit="folder", file=sys.stderr)


def _print_distribution(title: str, counts) -> None:
    print(title)
    width = max((len(k) for k in counts), default=0)
    for name, n in counts.most_common():
        print(f"  {name:<{width}}  {n:>6}")


def run_reasons(args: argparse.Namespace) -> int:
    """Handler of ``reasons``: export the TSV into each folder; exit 1 if any folder failed."""
    from .export import export_reasons
    from .loading import BombcellOutputError, warning_notes

    folders = _expand(args.ks_dirs)
    if not folders:
        print("error: no Kilosort folder given or matched", file=sys.stderr)
        return 2
    if args.bombcell_dir and len(folders) > 1:
        print("error: --bombcell-dir applies to one folder; use the KS_DIR/bombcell default for batches",
              file=sys.stderr)
        return 2
    failed = 0
    for ks_dir in _progress(folders):
        print(f"\n== {ks_dir}")
        try:
            res = export_reasons(ks_dir, args.bombcell_dir)
        except (BombcellOutputError, FileNotFoundError, ValueError, OSError) as exc:
            print(f"error: {ks_dir}: {exc} (nothing written)", file=sys.stderr)
            failed += 1
            continue
        print(f"Loaded {res.n_units} units")
        _print_distribution("Label distribution:", res.labels)
        for note in warning_notes(res.notes):
            print(f"warning: {note}", file=sys.stderr)
        if res.n_mismatch:
            print(f"warning: {res.n_mismatch} unit(s): recomputed label differs from bombcell's saved label; "
                  "their reason says so instead of guessing", file=sys.stderr)
        if res.n_not_in_run:
            print(f"note: {res.n_not_in_run} cluster(s) in spike_clusters.npy are not in the bombcell run")
        print(f"Wrote classification reasons to: {res.path}")
    if failed:
        print(f"\n{failed} of {len(folders)} folder(s) failed", file=sys.stderr)
    return 1 if failed else 0


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``reasons-report``: write PNG figures and one self-contained HTML page."""
    from .export import evaluate_folder
    from .loading import BombcellOutputError, warning_notes
    from .report import write_report

    try:
        ev = evaluate_folder(args.ks_dir, args.bombcell_dir)
        html = write_report(ev, args.out, title=f"bombcell classification audit: {Path(args.ks_dir).name}")
    except (BombcellOutputError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for note in warning_notes(ev.notes):
        print(f"warning: {note}", file=sys.stderr)
    print(f"Wrote audit report: {html}")
    return 0


def register(subparsers) -> None:
    """Add the ``reasons`` and ``reasons-report`` subcommands."""
    p = subparsers.add_parser(
        "reasons", help="write cluster_bc_classificationReason.tsv (why bombcell labelled each unit)",
        description="Recompute bombcell's classification rule by rule and write the main reason of every "
                    "unit to KS_DIR/cluster_bc_classificationReason.tsv. Accepts many folders or globs.")
    p.add_argument("ks_dirs", nargs="+", metavar="KS_DIR", help="Kilosort folder(s) or glob pattern(s)")
    p.add_argument("--bombcell-dir", default=None,
                   help="bombcell output folder (default: KS_DIR/bombcell); parquet or CSV")
    p.set_defaults(func=run_reasons)

    r = subparsers.add_parser(
        "reasons-report", help="audit report (PNG + self-contained HTML) of bombcell classification reasons")
    r.add_argument("ks_dir", metavar="KS_DIR")
    r.add_argument("--out", required=True, help="output folder for the figures and report.html")
    r.add_argument("--bombcell-dir", default=None, help="bombcell output folder (default: KS_DIR/bombcell)")
    r.set_defaults(func=run_report)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (the package CLI calls :func:`register`)."""
    parser = argparse.ArgumentParser(prog="phy-plugins")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
