"""Background work for phy plugins: off the GUI thread, with progress, cancel and error reports.

``fn(*args, progress=Progress)`` runs in Qt's global thread pool (the one phy uses). Results,
errors and progress come back to the GUI thread through queued Qt signals, so the callbacks may
touch phy's GUI. Exceptions are logged and shown in the status bar, never swallowed.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import QCoreApplication, QObject, QRunnable, QThreadPool, pyqtSignal

logger = logging.getLogger("phy")


class TaskCancelled(Exception):
    """Raised by :meth:`Progress.check` when the user cancelled the task."""


class Progress:
    """Handed to the background function: report progress, check for cancellation."""

    def __init__(self, emit: Callable[[int, int, str], None] | None = None):
        self._cancel = threading.Event()
        self._emit = emit
        self.done, self.total, self.text = 0, 0, ""

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def check(self) -> None:
        """Raise :class:`TaskCancelled` if cancelled (call it between steps)."""
        if self._cancel.is_set():
            raise TaskCancelled()

    def update(self, done: int, total: int = 0, text: str = "") -> None:
        self.done, self.total, self.text = done, total, text
        if self._emit is not None:
            self._emit(int(done), int(total), str(text))


class _Signals(QObject):
    result = pyqtSignal(object)
    error = pyqtSignal(object)  # (exception, traceback text)
    progress = pyqtSignal(int, int, str)
    finished = pyqtSignal()


class _Runnable(QRunnable):
    def __init__(self, task: BackgroundTask):
        super().__init__()
        self.setAutoDelete(False)
        self.task = task

    def run(self) -> None:  # runs in a pool thread
        t = self.task
        try:
            result = t.fn(*t.args, progress=t.progress, **t.kwargs)
        except TaskCancelled:
            t.signals.error.emit((TaskCancelled(), ""))
        except BaseException as exc:  # noqa: BLE001 - reported on the GUI thread
            t.signals.error.emit((exc, traceback.format_exc()))
        else:
            t.signals.result.emit(result)
        finally:
            t._done.set()
            t.signals.finished.emit()


class BackgroundTask:
    """Run ``fn(*args, progress=..., **kwargs)`` off the GUI thread.

    Callbacks (``on_result(value)``, ``on_error(exc, tb)``, ``on_progress(done, total, text)``)
    run on the GUI thread. With ``gui``, progress and errors also show in phy's status bar.
    Keep a reference to the task while it runs (plugins store it on themselves).
    """

    _running: set[BackgroundTask] = set()

    def __init__(self, fn: Callable[..., Any], *args: Any, on_result: Callable[[Any], None] | None = None,
                 on_error: Callable[[BaseException, str], None] | None = None,
                 on_progress: Callable[[int, int, str], None] | None = None, gui: Any = None,
                 name: str = "", start: bool = True, **kwargs: Any):
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.name = name or getattr(fn, "__name__", "task")
        self.gui = gui
        self.on_result, self.on_error, self.on_progress = on_result, on_error, on_progress
        self.signals = _Signals()
        self.progress = Progress(self.signals.progress.emit)
        self.result: Any = None
        self.exception: BaseException | None = None
        self._done = threading.Event()
        self._finished_gui = False
        self.signals.result.connect(self._handle_result)
        self.signals.error.connect(self._handle_error)
        self.signals.progress.connect(self._handle_progress)
        self.signals.finished.connect(self._handle_finished)
        self._runnable = _Runnable(self)
        if start:
            self.start()

    def start(self) -> BackgroundTask:
        BackgroundTask._running.add(self)
        QThreadPool.globalInstance().start(self._runnable)
        return self

    def cancel(self) -> None:
        """Ask the function to stop (it must check ``progress.cancelled``)."""
        self.progress.cancel()

    @property
    def running(self) -> bool:
        return not self._finished_gui

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Process Qt events until the task finished and its callbacks ran (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while not self._finished_gui and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            self._done.wait(0.01)
        QCoreApplication.processEvents()
        return self._finished_gui

    def _status(self, text: str) -> None:
        if self.gui is not None:
            from .phy_safety import status

            status(self.gui, text)

    def _handle_progress(self, done: int, total: int, text: str) -> None:
        pct = f" {100 * done // total}%" if total else ""
        self._status(f"{self.name}: {text}{pct}")
        if self.on_progress is not None:
            _call_safely(self.on_progress, self.name, done, total, text)

    def _handle_result(self, value: Any) -> None:
        self.result = value
        if self.on_result is not None:
            _call_safely(self.on_result, self.name, value)

    def _handle_error(self, payload: tuple) -> None:
        exc, tb = payload
        self.exception = exc
        if isinstance(exc, TaskCancelled):
            self._status(f"{self.name}: cancelled")
        else:
            logger.error("%s failed: %s: %s\n%s", self.name, type(exc).__name__, exc, tb)
            self._status(f"{self.name} failed: {exc}")
        if self.on_error is not None:
            _call_safely(self.on_error, self.name, exc, tb)

    def _handle_finished(self) -> None:
        self._finished_gui = True
        BackgroundTask._running.discard(self)


def _call_safely(fn: Callable, name: str, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001
        logger.error("%s callback failed: %s: %s\n%s", name, type(exc).__name__, exc, traceback.format_exc())
