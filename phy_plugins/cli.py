"""The ``phy-plugins`` command: install into phy, run the demo, check the setup, plugin tools."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from . import PLUGIN_CLASS_NAMES, __version__

PLUGIN_CLI_MODULES = (
    "phy_plugins.classification_reason.cli",
    "phy_plugins.unitrefine.cli",
    "phy_plugins.vlm_merge.cli",
    "phy_plugins.live_detect.cli",
)


def _config_dir(args: argparse.Namespace) -> Path:
    from .core.settings import phy_config_dir

    return Path(args.config_dir).expanduser() if args.config_dir else phy_config_dir()


def cmd_install(args: argparse.Namespace) -> int:
    from .core.install import install

    cfg = _config_dir(args)
    done = install(cfg)
    for line in done or [f"already installed in {cfg}: nothing to do"]:
        print(line)
    print("phy will attach: " + ", ".join(PLUGIN_CLASS_NAMES))
    if not args.no_warm_up:
        from .core.warmup import warm_up

        print("compiling the numba kernels (once; later runs load them from numba's cache)...", flush=True)
        try:
            took = warm_up()
        except Exception as exc:  # noqa: BLE001 - installed anyway; phy compiles on first use instead
            print(f"warning: could not compile the kernels now ({type(exc).__name__}: {exc}); "
                  "phy will compile them on first use", file=sys.stderr)
        else:
            print("ready: " + ", ".join(f"{name} {s:.1f} s" for name, s in took.items()))
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    from .core.install import uninstall

    cfg = _config_dir(args)
    for line in uninstall(cfg) or [f"not installed in {cfg}: nothing to do"]:
        print(line)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .core.doctor import report

    text, ok = report(_config_dir(args))
    print(text)
    return 0 if ok else 1


def cmd_generate(args: argparse.Namespace) -> int:
    from .core.console import percent_printer
    from .core.synthetic import generate_dataset

    out = generate_dataset(args.dir, preset=args.preset, seed=args.seed, overwrite=args.overwrite,
                           progress=percent_printer("generating: "))
    print(f"\ndataset ready: {out} (ground truth in {out / 'ground_truth.json'})")
    return 0


def cmd_bombcell(args: argparse.Namespace) -> int:
    from .core.bombcell_run import run_bombcell

    for ks_dir in args.ks_dirs:
        print(f"running bombcell on {ks_dir} ...", flush=True)
        out = run_bombcell(ks_dir, args.save_path, raw=not args.no_raw, quiet=not args.verbose)
        print(f"bombcell results in {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import prepare_demo, run_demo_gui

    ks_dir = prepare_demo(Path(args.dir), seed=args.seed, preset=args.preset, log=print)
    if args.no_gui:
        print(f"demo folder ready: {ks_dir}")
        return 0
    return run_demo_gui(ks_dir, screenshot=args.screenshot)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phy-plugins", description=__doc__)
    parser.add_argument("--version", action="version", version=f"phy-plugins {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def cfg_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config-dir", help="phy config folder (default: ~/.phy)")

    p = sub.add_parser("install", help="make phy load the plugins (shim + phy_config.py lines)")
    cfg_arg(p)
    p.add_argument("--no-warm-up", action="store_true", help="do not compile the numba kernels now")
    p.set_defaults(func=cmd_install)
    p = sub.add_parser("uninstall", help="remove exactly what `install` added")
    cfg_arg(p)
    p.set_defaults(func=cmd_uninstall)
    p = sub.add_parser("doctor", help="versions, config and which plugins phy would attach")
    cfg_arg(p)
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("generate", help="write a synthetic Kilosort folder with ground truth")
    p.add_argument("dir", help="output folder")
    p.add_argument("--preset", choices=["small", "large"], default="small")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="regenerate an existing dataset")
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser("bombcell", help="run bombcell 0.94 on Kilosort folders (headless, no plots)")
    p.add_argument("ks_dirs", nargs="+", metavar="KS_DIR")
    p.add_argument("--save-path", help="output folder (default: KS_DIR/bombcell)")
    p.add_argument("--no-raw", action="store_true", help="skip the raw-data metrics even if the raw file exists")
    p.set_defaults(func=cmd_bombcell)
    p = sub.add_parser("demo", help="generate a dataset, run bombcell and open phy with all plugins")
    p.add_argument("--dir", default="phy-plugins-demo", help="dataset folder (default: ./phy-plugins-demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", choices=["small", "large"], default="small")
    p.add_argument("--screenshot", metavar="FILE.png", help="render the window to a PNG and exit")
    p.add_argument("--no-gui", action="store_true", help="prepare the folder only (dataset, bombcell, exports)")
    p.set_defaults(func=cmd_demo)

    for mod in PLUGIN_CLI_MODULES:
        try:
            importlib.import_module(mod).register(sub)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                logging.getLogger("phy").warning("phy-plugins: %s unavailable: %s", mod, exc)
        except Exception as exc:  # noqa: BLE001 - one broken plugin CLI must not hide the rest
            logging.getLogger("phy").warning("phy-plugins: %s unavailable: %s", mod, exc)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.root.handlers:  # phy's loggers are at DEBUG and propagate here
        handler.setLevel(level)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - clear message, not a traceback
        from .core.kilosort import DatasetError

        if isinstance(exc, (DatasetError, FileNotFoundError, ValueError)) and not args.verbose:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
