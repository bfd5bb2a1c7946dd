"""``phy-plugins vlm-merge``: AI merge suggestions without the GUI."""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

HELP = "AI merge suggestions for similar cluster pairs (VLM or --model offline)"


def register(subparsers) -> None:
    """Add the ``vlm-merge`` subcommand."""
    p = subparsers.add_parser("vlm-merge", help=HELP, description=HELP + ". Writes "
                              "vlm_merge_reasoning.csv and curation.json in KS_DIR; images and "
                              "cache go to KS_DIR/vlm_merge/. The API key is read from "
                              "OPENAI_API_KEY or a .env file only.")
    p.add_argument("ks_dir", metavar="KS_DIR", help="Kilosort / phy folder")
    p.add_argument("--model", default=None,
                   help="model name (default gpt-4o), or 'offline' for the API-free judge")
    p.add_argument("--base-url", default=None,
                   help="OpenAI-compatible server URL (default: env OPENAI_BASE_URL or config)")
    p.add_argument("--threshold", type=float, default=None,
                   help="minimum template similarity 0-1 (default 0.7; higher = stricter, "
                        "fewer pairs)")
    p.add_argument("-k", "--per-cluster", type=int, default=None, dest="k",
                   help="at most this many pairs per cluster (default 3)")
    p.add_argument("--workers", type=int, default=None, help="concurrent requests (default 8)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per request (default 60)")
    p.add_argument("--retries", type=int, default=None,
                   help="retries per pair on 429/5xx/timeouts, with backoff (default 4)")
    p.add_argument("--no-waveforms", action="store_true", help="omit the waveform panel")
    p.add_argument("--no-cache", action="store_true", help="judge every pair again")
    p.add_argument("--dry-run", action="store_true",
                   help="render images, print pairs and estimated cost; call nothing")
    p.add_argument("-y", "--yes", action="store_true",
                   help="do not ask for confirmation before sending (interactive terminals)")
    p.set_defaults(func=run_cli)


def _config(args: argparse.Namespace):
    from phy_plugins.core.settings import plugin_settings

    from .api import DEFAULT_MODEL, RetryPolicy
    from .pipeline import RunConfig

    try:
        conf = plugin_settings("vlm_merge")
    except Exception:  # noqa: BLE001 - a broken settings file must not block the CLI
        conf = {}

    def pick(value, key, default):
        return value if value is not None else conf.get(key, default)

    return RunConfig(
        model=pick(args.model, "model", DEFAULT_MODEL),
        base_url=pick(args.base_url, "base_url", None),
        threshold=float(pick(args.threshold, "threshold", 0.7)),
        k=int(pick(args.k, "k", 3)),
        workers=int(pick(args.workers, "workers", 8)),
        waveforms=not args.no_waveforms,
        use_cache=not args.no_cache,
        retry=RetryPolicy(timeout=float(pick(args.timeout, "timeout", 60.0)),
                          max_attempts=1 + max(0, int(pick(args.retries, "retries", 4)))),
    )


def _bar(done: int, total: int, text: str) -> None:
    width = 30
    fill = width * done // total if total else 0
    print(f"\r[{'#' * fill}{'-' * (width - fill)}] {done}/{total} {text[:40]:<40}",
          end="", file=sys.stderr, flush=True)


def run_cli(args: argparse.Namespace) -> int:
    from phy_plugins.core.kilosort import DatasetError

    from . import pipeline
    from .api import CallError
    from .evidence import load_sorting

    ks_dir = Path(args.ks_dir)
    try:
        cfg = _config(args)
        if cfg.workers < 1:
            raise ValueError("--workers must be at least 1")
        data = load_sorting(ks_dir)
        plan = pipeline.make_plan(data, ks_dir, cfg)
    except (DatasetError, ValueError, OSError) as exc:
        print(f"vlm-merge: {exc}", file=sys.stderr)
        return 2
    print(f"similarity threshold {cfg.threshold} (higher = stricter), at most {cfg.k} "
          f"pair(s) per cluster, noise clusters skipped")
    print(plan.summary())
    for c in plan.candidates:
        print(f"  {c.a:>5d} {c.b:>5d}  similarity {c.similarity:.3f}")
    if not plan.candidates:
        return 0
    if (not args.dry_run and not cfg.offline and plan.n_to_send and not args.yes
            and sys.stdin.isatty()):
        if input(f"Send {plan.n_to_send} pair(s) to {cfg.model}? [y/N] ").strip().lower() \
                not in ("y", "yes"):
            print("nothing sent")
            return 0
    cancelled = [False]

    def on_sigint(signum, frame):  # Ctrl-C: stop, keep what is done
        cancelled[0] = True

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        report = pipeline.run(data, ks_dir, cfg, plan=plan, progress=_bar,
                              is_cancelled=lambda: cancelled[0], dry_run=args.dry_run)
    except CallError as exc:  # e.g. no API key
        print(f"\nvlm-merge: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, old)
    print(file=sys.stderr)
    if args.dry_run:
        images = sorted({str(Path(r.image_file).parent) for r in report.results})
        print(f"dry run: {len(report.results)} image(s) in {', '.join(images)}; nothing sent")
        return 0
    for r in sorted(report.results, key=lambda r: -r.merge_score):
        conf = "" if r.confidence is None else f"{r.confidence:.2f}"
        print(f"  {r.cluster_id_1:>5d} {r.cluster_id_2:>5d}  {r.decision:<9} {conf:>5}  "
              f"{(r.error or r.reasoning)[:90]}")
    print(report.summary())
    print(f"results: {report.csv_path}\nproposals: {report.curation_path}")
    if report.n_errors:
        print(f"{report.n_errors} pair(s) failed (decision 'error'); run the same command "
              "again to retry them (judged pairs are cached).", file=sys.stderr)
        return 1
    return 0
