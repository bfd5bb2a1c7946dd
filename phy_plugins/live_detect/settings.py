"""Thread-safe immutable settings with observers (the seed's ``AnalysisSettingsStore``)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

logger = logging.getLogger("phy")
T = TypeVar("T")


class SettingsStore(Generic[T]):
    """Holds one frozen dataclass instance; ``update`` replaces it and notifies subscribers.

    Subscribers run on the thread that called ``update``, outside the lock (a Qt subscriber
    must re-post to the GUI thread itself). A subscriber that raises is logged and skipped,
    including during the replay call of ``subscribe``.
    """

    def __init__(self, initial: T) -> None:
        if not (dataclasses.is_dataclass(initial) and not isinstance(initial, type)):
            raise TypeError("SettingsStore needs a dataclass instance")
        self._value = initial
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[T], Any]] = []

    def get(self) -> T:
        """Current settings snapshot (immutable)."""
        with self._lock:
            return self._value

    def update(self, **changes: Any) -> T:
        """Replace fields (validated by the dataclass); notify subscribers if anything changed."""
        with self._lock:
            old = self._value
            new = dataclasses.replace(old, **changes)
            self._value = new
            subscribers = list(self._subscribers)
        if new != old:
            for cb in subscribers:
                self._call(cb, new)
        return new

    def set(self, value: T) -> T:
        """Replace the whole snapshot (must be the same dataclass type)."""
        if type(value) is not type(self._value):
            raise TypeError(f"expected {type(self._value).__name__}, got {type(value).__name__}")
        return self.update(**{f.name: getattr(value, f.name) for f in dataclasses.fields(value)})

    def subscribe(self, callback: Callable[[T], Any], *, replay: bool = True) -> Callable[[], None]:
        """Register ``callback(settings)``; return an ``unsubscribe()`` function (idempotent)."""
        with self._lock:
            self._subscribers.append(callback)
            snapshot = self._value
        if replay:
            self._call(callback, snapshot)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    @staticmethod
    def _call(cb: Callable[[T], Any], value: T) -> None:
        try:
            cb(value)
        except Exception:  # a broken observer must not break the others
            logger.warning("live_detect: settings subscriber %r failed", cb, exc_info=True)
