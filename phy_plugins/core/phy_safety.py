"""Keep one plugin's failure from stopping phy or the other plugins.

phy's event system does not catch exceptions: one raising ``gui_ready`` handler stops every
later handler, including other plugins'. Wrap every callback with :func:`isolated`.
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger("phy")

F = TypeVar("F", bound=Callable[..., Any])

#: Last failures, newest last: ``(callback name, message)`` (shown by ``doctor`` and tests).
FAILURES: list[tuple[str, str]] = []


def status(gui: Any, text: str) -> None:
    """Show ``text`` in phy's status bar if there is one; never raises."""
    try:
        if gui is not None:
            gui.status_message = text
    except Exception:  # noqa: BLE001 - the GUI may be closing
        pass


def _find_gui(args: tuple, kwargs: dict) -> Any:
    for a in (*args, *kwargs.values()):
        if hasattr(a, "status_message") and hasattr(a, "add_view"):
            return a
        g = getattr(a, "gui", None)
        if g is not None and hasattr(g, "status_message"):
            return g
    return None


def isolated(fn: F) -> F:
    """Decorate a phy callback: exceptions are logged and shown, never propagated."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            name = getattr(fn, "__qualname__", getattr(fn, "__name__", "callback"))
            msg = f"{name} failed: {type(exc).__name__}: {exc}"
            FAILURES.append((name, msg))
            del FAILURES[:-50]
            logger.error("phy-plugins: %s\n%s", msg, traceback.format_exc())
            status(_find_gui(args, kwargs), f"phy-plugins: {msg}")
            return None

    return wrapper  # type: ignore[return-value]
