"""Compile the numba kernels once, ahead of use, so phy never pauses for it.

numba compiles a kernel on its first call and keeps the machine code in its on-disk cache; later
processes only load it (well under a second). ``phy-plugins install`` calls :func:`warm_up`, so
the first Start of the live detector or the first reason column in phy does not stall the GUI
for the compilation (the compiler holds Python's GIL, so a worker thread does not help).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def _classification_reason() -> None:
    from ..classification_reason.engine import evaluate
    from ..classification_reason.rules import CLEAN_UNIT

    evaluate({name: np.full(3, float(value)) for name, value in CLEAN_UNIT.items()}, None)


def _live_detect() -> None:
    from ..live_detect import detect

    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 10.0, (3000, 4))
    x[500::400, 1] -= 200.0  # a few spikes, so the event paths run too,
    x[545::400, 1] -= 200.0  # and one 1.5 ms later on the same channel (refractory drops it)
    positions = np.column_stack([np.zeros(4), 20.0 * np.arange(4)])
    for traces in (x.astype(np.int16), x.astype(np.float32)):  # raw int16, and band-passed float32
        detect(traces, 30000.0, positions, chunk_size=700)


#: what is compiled, by plugin
PARTS: dict[str, Callable[[], None]] = {"classification_reason": _classification_reason,
                                        "live_detect": _live_detect}


def warm_up() -> dict[str, float]:
    """Run each compiled path once on tiny inputs; return the seconds each plugin took (a
    compilation, or a load from numba's cache)."""
    took = {}
    for name, run in PARTS.items():
        t0 = time.perf_counter()
        run()
        took[name] = time.perf_counter() - t0
    return took
