"""Console progress for long command-line steps."""

from __future__ import annotations

import sys
from collections.abc import Callable


def percent_printer(prefix: str, step: int = 1) -> Callable[[float, str], None]:
    """A ``progress(fraction, text)`` callback printing ``<prefix><text> NN%`` on stderr.

    The line is rewritten in place, only when the percentage (rounded down to ``step``) changes.
    """
    shown = [-1]

    def show(fraction: float, text: str = "") -> None:
        pct = int(fraction * 100 / step) * step
        if pct != shown[0]:
            shown[0] = pct
            print(f"\r{prefix}{text} {pct:3d}%", end="", file=sys.stderr, flush=True)

    return show
