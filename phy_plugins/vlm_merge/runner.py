"""Bounded-concurrency execution with progress and prompt cancellation."""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_bounded(
    items: Sequence[T],
    fn: Callable[[T, threading.Event], R],
    *,
    workers: int = 8,
    is_cancelled: Callable[[], bool] = lambda: False,
    on_done: Callable[[int, int, R], None] | None = None,
    on_cancelled: Callable[[T], R] | None = None,
    poll_s: float = 0.05,
) -> list[R | None]:
    """Run ``fn(item, cancel_event)`` for every item with at most ``workers`` at once.

    Results keep the input order. When ``is_cancelled()`` turns true, the cancel event is set
    (calls stop retrying), queued items are dropped and this returns at once; unfinished
    items get ``on_cancelled(item)`` (or None).
    """
    n = len(items)
    results: list[R | None] = [None] * n
    if n == 0:
        return results
    cancel = threading.Event()
    ex = ThreadPoolExecutor(max_workers=max(1, int(workers)), thread_name_prefix="vlm_merge")
    futures = {ex.submit(fn, item, cancel): i for i, item in enumerate(items)}
    pending = set(futures)
    done_count = 0
    try:
        while pending:
            done, pending = wait(pending, timeout=poll_s, return_when=FIRST_COMPLETED)
            for f in done:
                i = futures[f]
                results[i] = f.result()  # fn records its own failures; a bug here is raised
                done_count += 1
                if on_done:
                    on_done(done_count, n, results[i])
            if pending and is_cancelled():
                cancel.set()
                for f in pending:
                    i = futures[f]
                    results[i] = on_cancelled(items[i]) if on_cancelled else None
                break
    finally:
        if pending:
            cancel.set()
        ex.shutdown(wait=False, cancel_futures=True)
    return results
