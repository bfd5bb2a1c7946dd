"""Open phy's TemplateGUI on a folder programmatically (demo, tests, screenshots)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .kilosort import DatasetError


def process_events(seconds: float = 0.0) -> None:
    """Run the Qt event loop for ``seconds`` (at least one pass)."""
    from PyQt5.QtCore import QCoreApplication

    end = time.monotonic() + seconds
    while True:
        QCoreApplication.processEvents()
        if time.monotonic() >= end:
            break
        time.sleep(0.005)


def wait_until(predicate, timeout_s: float = 20.0) -> bool:
    """Process events until ``predicate()`` is true or the timeout passes."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        process_events()
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def open_phy(ks_dir: str | Path, *, plugins: list[str] | None = None, config_dir: str | Path | None = None,
             clear_state: bool = False, clear_cache: bool = False, enable_threading: bool = True,
             show: bool = True, size: tuple[int, int] | None = None) -> tuple[Any, Any]:
    """Build a ``TemplateController`` and its GUI like ``phy template-gui``; return both.

    The cluster and similarity tables are ready when this returns.
    """
    from phy.apps.template import TemplateController
    from phy.gui.qt import create_app
    from phylib.io.model import get_template_params

    params = Path(ks_dir) / "params.py"
    if not params.exists():
        raise DatasetError(f"{params} not found")
    create_app()
    kwargs: dict[str, Any] = dict(clear_cache=clear_cache, clear_state=clear_state,
                                  enable_threading=enable_threading, plugins=list(plugins or []))
    if config_dir is not None:
        kwargs["config_dir"] = Path(config_dir)
    controller = TemplateController(**get_template_params(str(params)), **kwargs)
    gui = controller.create_gui(do_prompt_save=False)
    if size is not None:
        gui.resize(*size)
    if show:
        gui.show()
    sup = controller.supervisor
    wait_until(lambda: sup.cluster_view.is_ready() and sup.similarity_view.is_ready(), 30.0)
    return controller, gui


def close_phy(controller: Any, gui: Any) -> None:
    """Close the GUI and the model, then drop phylib's global event callbacks."""
    from phylib.utils import reset

    try:
        gui.close()
        process_events(0.05)
    finally:
        try:
            controller.model.close()
        finally:
            reset()


def screenshot(gui: Any, path: str | Path, settle_s: float = 1.5) -> Path:
    """Render the whole phy window (all docks) to a PNG."""
    process_events(settle_s)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from PyQt5.QtGui import QGuiApplication

    app = QGuiApplication.instance()
    if app is not None and app.platformName() != "offscreen" and app.primaryScreen() is not None:
        # on a real (or Xvfb) screen, grab the composed window so OpenGL views show their pixels
        gui.raise_()
        process_events(0.2)
        pixmap = app.primaryScreen().grabWindow(int(gui.winId()))
    else:
        pixmap = gui.grab()
    if pixmap.isNull() or not pixmap.save(str(path), "PNG"):
        raise RuntimeError(f"could not write screenshot {path}")
    return path
