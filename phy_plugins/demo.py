"""``phy-plugins demo``: a generated dataset, bombcell, plugin exports, and phy with all plugins."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from . import PLUGIN_CLASS_NAMES

#: Per-plugin preparation steps run by ``--no-gui`` and before the GUI opens:
#: ``(label, "module:function")``, each called as ``function(ks_dir) -> str`` (a summary line).
DEMO_STEPS = (
    ("bombcell classification reasons", "phy_plugins.classification_reason.demo:prepare"),
    ("UnitRefine model and predictions", "phy_plugins.unitrefine.demo:prepare"),
    ("offline merge suggestions", "phy_plugins.vlm_merge.demo:prepare"),
)


def _resolve(target: str) -> Callable:
    mod, func = target.split(":")
    return getattr(importlib.import_module(mod), func)


def prepare_demo(out_dir: Path, *, seed: int = 0, preset: str = "small",
                 log: Callable[[str], None] = print) -> Path:
    """Generate the dataset if absent, run bombcell if not done, then each plugin's export."""
    from .core.bombcell_run import run_bombcell
    from .core.console import percent_printer
    from .core.synthetic import generate_dataset

    out_dir = Path(out_dir).resolve()
    if (out_dir / "params.py").exists():
        log(f"[1/3] dataset present: {out_dir}")
    else:
        log(f"[1/3] dataset: {out_dir} ({preset}, seed {seed})")
        generate_dataset(out_dir, preset=preset, seed=seed, progress=percent_printer("      ", step=5))
        print(file=sys.stderr)
    if not (out_dir / "bombcell" / "templates._bc_qMetrics.parquet").exists():
        log("[2/3] running bombcell (about 10 s)")
        run_bombcell(out_dir)
    else:
        log("[2/3] bombcell results present")
    log("[3/3] plugin exports")
    for label, target in DEMO_STEPS:
        try:
            summary = _resolve(target)(out_dir)
            log(f"      {label}: {summary}")
        except Exception as exc:  # noqa: BLE001 - one failing step must not stop the demo
            log(f"      {label}: FAILED ({type(exc).__name__}: {exc})")
    return out_dir


def run_demo_gui(ks_dir: Path, *, screenshot: str | None = None) -> int:
    """Open phy's TemplateGUI with all four plugins; with ``screenshot``, save a PNG and exit.

    Without a display, a screenshot is written instead: phy runs in a child process on a virtual
    Xvfb screen when Xvfb is installed (phy's OpenGL views then draw), else offscreen here (those
    views stay blank).
    """
    headless = not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith(
        "linux")
    if not (headless and not os.environ.get("QT_QPA_PLATFORM")):
        return _run_demo_gui(ks_dir, screenshot)
    screenshot = screenshot or str(ks_dir / "phy-plugins-demo.png")
    if _run_on_virtual_screen(ks_dir, screenshot):
        return 0
    print("no display found: writing a screenshot instead of opening a window; phy's OpenGL views stay "
          "blank offscreen (install xvfb for them, or run on a desktop to interact with phy)")
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    return _run_demo_gui(ks_dir, screenshot)


def _run_on_virtual_screen(ks_dir: Path, screenshot: str) -> bool:
    """Run the GUI step in a child process on an Xvfb screen; False when that is not possible.

    A child, because Qt ends its process when its X server goes away: the server is stopped only
    after the child has exited.
    """
    from .core.virtual_display import virtual_display, xvfb_available

    if not xvfb_available():
        return False
    code = ("import sys; from pathlib import Path; from phy_plugins.demo import run_demo_gui; "
            "sys.exit(run_demo_gui(Path(sys.argv[1]), screenshot=sys.argv[2]))")
    package_parent = str(Path(__file__).resolve().parents[1])
    env_path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
    try:
        with virtual_display() as display:
            print(f"no display found: drawing phy on a virtual screen (Xvfb {display}) and writing a screenshot")
            env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "PYTHONPATH": env_path}
            done = subprocess.run([sys.executable, "-c", code, str(ks_dir), screenshot], env=env, timeout=600)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"virtual screen unavailable: {exc}")
        return False
    if done.returncode != 0:
        print(f"phy could not run on the virtual screen (exit code {done.returncode})")
    return done.returncode == 0


def _run_demo_gui(ks_dir: Path, screenshot: str | None) -> int:
    from phy.gui.qt import run_app

    from . import all_plugins  # noqa: F401 - registers the plugin classes
    from .core.phy_session import close_phy, open_phy, process_events
    from .core.phy_session import screenshot as grab

    config_dir = ks_dir / ".phy-plugins-demo-config"  # keeps the user's ~/.phy untouched
    try:
        from .core.settings import save_plugin_settings
        from .unitrefine.demo import demo_settings

        unitrefine_settings = demo_settings(ks_dir)
        if unitrefine_settings:
            save_plugin_settings("unitrefine", unitrefine_settings, config_dir)
    except Exception as exc:  # noqa: BLE001 - the demo still opens without a model
        print(f"UnitRefine demo model unavailable: {exc}")
    controller, gui = open_phy(ks_dir, plugins=list(PLUGIN_CLASS_NAMES), config_dir=config_dir,
                               size=(3000, 1500) if screenshot else None)
    try:
        sup = controller.supervisor
        ids = sup.clustering.cluster_ids
        if len(ids):
            sup.select([int(ids[0])])
            process_events(1.0)
        if screenshot:
            path = grab(gui, screenshot)
            print(f"screenshot written: {path}")
            return 0
        print("phy is open; close its window to finish.")
        run_app()
        return 0
    finally:
        close_phy(controller, gui)
