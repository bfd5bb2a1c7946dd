"""Child of test_gl_pixels_xvfb: open phy with our plugins on a real (Xvfb) screen and save the GL views' pixels.

Usage: ``python gl_pixels_child.py KS_DIR OUT_DIR``. Writes ``OUT_DIR/<ViewName>.png`` for every OpenGL view
(from the canvas framebuffer) and ``OUT_DIR/views.json`` with the platform name and each PNG's size.
"""

from __future__ import annotations

import faulthandler
import json
import sys
from pathlib import Path

WATCHDOG_S = 45.0  # the child exits (with a traceback) rather than hang


def save_gl_views(gui, out_dir: Path) -> dict[str, dict]:
    """Save each OpenGL view's framebuffer to ``<name>.png``; return name -> {path, width, height}."""
    from phy.plot.base import BaseCanvas

    saved = {}
    for view in gui.views:
        canvas = getattr(view, "canvas", None)
        if not isinstance(canvas, BaseCanvas):
            continue
        image = canvas.grabFramebuffer()  # renders paintGL into an FBO and reads it back
        path = out_dir / f"{view.name}.png"
        if image.isNull() or not image.save(str(path), "PNG"):
            raise RuntimeError(f"could not grab {view.name}")
        saved[view.name] = dict(path=str(path), width=image.width(), height=image.height())
    return saved


def main(ks_dir: Path, out_dir: Path) -> int:
    from PyQt5.QtGui import QGuiApplication

    from phy_plugins import PLUGIN_CLASS_NAMES, all_plugins  # noqa: F401 - registers our plugin classes
    from phy_plugins.core.phy_session import close_phy, open_phy, process_events, wait_until

    controller, gui = open_phy(ks_dir, plugins=list(PLUGIN_CLASS_NAMES), config_dir=out_dir / "phy-config",
                               clear_state=True, clear_cache=True, enable_threading=False, size=(1600, 1000))
    try:
        sup = controller.supervisor
        cluster = int(sup.clustering.cluster_ids[0])
        sup.select([cluster])
        wait_until(lambda: sup.selected == [cluster], 10.0)
        process_events(1.0)  # let the views receive the selection and paint
        views = save_gl_views(gui, out_dir)
        info = dict(platform=QGuiApplication.platformName(), cluster=cluster,
                    attached=list(controller.attached_plugins), views=views)
        (out_dir / "views.json").write_text(json.dumps(info, indent=1))
    finally:
        close_phy(controller, gui)
    return 0


if __name__ == "__main__":
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
