"""``phy-plugins live-detect``: offline threshold detection over a phy folder's raw data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "threshold spike detection over the raw data of a phy folder (events to .npy/.csv)"


def register(subparsers) -> None:
    """Add the ``live-detect`` subcommand."""
    p = subparsers.add_parser("live-detect", help=HELP, description=HELP + ". Uses the same streaming "
                              "detector as the LiveDetectView dock; each event is matched to the sorted "
                              "cluster with a spike within +-0.5 ms on a nearby channel.")
    p.add_argument("ks_dir", metavar="KS_DIR", help="Kilosort / phy folder with params.py and the raw file")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="output .npy or .csv (default KS_DIR/live_detect/events.npy)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--start", type=float, default=0.0, help="start time in seconds (default 0)")
    p.add_argument("--duration", type=float, default=None, help="seconds to process (default: all)")
    p.add_argument("-k", "--k-sigma", type=float, default=4.5, help="threshold in noise sigmas (default 4.5)")
    p.add_argument("--polarity", choices=("neg", "pos", "both"), default="neg")
    p.add_argument("--refractory-ms", type=float, default=3.0, help="per-channel refractory (default 3)")
    p.add_argument("--radius-um", type=float, default=50.0,
                   help="report a spike once within this radius (default 50; 0 = per channel)")
    p.add_argument("--filter", choices=("auto", "on", "off"), default="auto",
                   help="300-6000 Hz causal band-pass: auto = unless params.py says hp_filtered")
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    from ..core.kilosort import DatasetError
    from .config import FILTER_BAND
    from .folder import detect_folder, events_table, write_events

    ks_dir = Path(args.ks_dir)
    out = args.out or ks_dir / "live_detect" / "events.npy"
    if out.suffix not in (".npy", ".csv"):
        print(f"error: {out}: the output must end in .npy or .csv", file=sys.stderr)
        return 2
    if out.suffix == ".csv" and out.resolve().parent == ks_dir.resolve():
        print("error: phy loads every .csv at the top of the folder as cluster metadata; "
              "write the events elsewhere (e.g. KS_DIR/live_detect/events.csv)", file=sys.stderr)
        return 2
    if out.exists() and not args.overwrite:
        print(f"error: {out} exists; pass --overwrite to replace it", file=sys.stderr)
        return 2
    band = {"auto": "auto", "on": FILTER_BAND, "off": None}[args.filter]
    try:
        res = detect_folder(ks_dir, start_s=args.start, duration_s=args.duration, filter_band=band,
                            auto_k_sigma=args.k_sigma, polarity=args.polarity,
                            refractory_s=args.refractory_ms / 1e3, radius_um=args.radius_um)
        path = write_events(out, events_table(res), overwrite=args.overwrite)
    except (DatasetError, ValueError, FileExistsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    n = len(res.events)
    seconds = (res.stop - res.start) / res.events.sample_rate
    matched = int((res.clusters >= 0).sum())
    print(f"{n} events in {seconds:.1f} s ({n / max(seconds, 1e-9):.1f}/s), {matched} matched to sorted clusters")
    found = sum(f for f, _ in res.recall.values())
    total = sum(t for _, t in res.recall.values())
    if total:
        print(f"sorted spikes found by the detector: {found}/{total} ({found / total:.1%})")
    print(f"wrote {path}")
    return 0
