"""``phy-plugins vlm-merge``: AI merge suggestions without the GUI."""
from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import replace
from pathlib import Path

HELP = "AI merge suggestions for similar cluster pairs (VLM or --model offline)"

# Built-in defaults, all read from RunConfig (the one source of truth): attribute getters.
DEFAULTS = {
    "model": lambda c: c.model,
    "threshold": lambda c: c.threshold,
    "k": lambda c: c.k,
    "workers": lambda c: c.workers,
    "timeout": lambda c: c.retry.timeout,
    "retries": lambda c: c.retry.max_attempts - 1,
}


class _Builtin:
    """RunConfig's default for a help text, looked up only when the help is printed (keeps
    ``phy-plugins`` quick to start: the pipeline's imports are heavy)."""

    def __init__(self, key: str):
        self.key = key

    def __str__(self) -> str:
        from .pipeline import RunConfig

        return str(DEFAULTS[self.key](RunConfig()))


def register(subparsers) -> None:
    """Add the ``vlm-merge`` subcommand."""
    p = subparsers.add_parser("vlm-merge", help=HELP, description=HELP + ". Writes "
                              "vlm_merge_reasoning.csv and curation.json in KS_DIR; images and "
                              "cache go to KS_DIR/vlm_merge/. The API key is read from "
                              "OPENAI_API_KEY or a .env file only.")
    p.add_argument("ks_dir", metavar="KS_DIR", help="Kilosort / phy folder")

    def option(*flags: str, key: str, help: str, **kw) -> None:
        action = p.add_argument(*flags, default=None, help=help + " (default %(builtin)s)", **kw)
        action.builtin = _Builtin(key)  # read by argparse's %-formatting of the help

    option("--model", key="model", help="model name, or 'offline' for the API-free judge")
    p.add_argument("--base-url", default=None,
                   help="OpenAI-compatible server URL (default: env OPENAI_BASE_URL or config)")
    option("--threshold", key="threshold", type=float,
           help="minimum template similarity 0-1; higher = stricter, fewer pairs")
    option("-k", "--per-cluster", key="k", type=int, dest="k",
           help="at most this many pairs per cluster")
    option("--workers", key="workers", type=int, help="concurrent requests")
    option("--timeout", key="timeout", type=float, help="seconds per request")
    option("--retries", key="retries", type=int,
           help="retries per pair on 429/5xx/timeouts, with backoff")
    p.add_argument("--no-waveforms", action="store_true", help="omit the waveform panel")
    p.add_argument("--no-cache", action="store_true", help="judge every pair again")
    p.add_argument("--dry-run", action="store_true",
                   help="render images, print pairs and estimated cost; call nothing")
    p.add_argument("-y", "--yes", action="store_true",
                   help="do not ask for confirmation before sending (interactive terminals)")
    p.set_defaults(func=run_cli)


def _config(args: argparse.Namespace):
    from phy_plugins.core.settings import plugin_settings

    from .pipeline import RunConfig

    try:
        conf = plugin_settings("vlm_merge")
    except Exception:  # noqa: BLE001 - a broken settings file must not block the CLI
        conf = {}
    d = RunConfig()

    def pick(key):  # command line, then the config file, then RunConfig's default
        value = getattr(args, key)
        return value if value is not None else conf.get(key, DEFAULTS[key](d))

    return replace(
        d,
        model=pick("model"),
        base_url=args.base_url,
        configured_base_url=conf.get("base_url"),
        threshold=float(pick("threshold")),
        k=int(pick("k")),
        workers=int(pick("workers")),
        waveforms=not args.no_waveforms,
        use_cache=not args.no_cache,
        retry=replace(d.retry, timeout=float(pick("timeout")),
                      max_attempts=1 + max(0, int(pick("retries")))),
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
