"""A virtual X screen (Xvfb) for headless machines, so phy's OpenGL views really draw.

Qt's ``offscreen`` platform gives phy's OpenGL canvases no pixels; on an Xvfb screen they render
like on a desktop, and a screenshot grabbed from that screen shows them.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

DEFAULT_SCREEN = "3200x1800x24"  # larger than the demo window (3000 x 1500)


def xvfb_available() -> bool:
    """Whether the ``Xvfb`` server is installed."""
    return shutil.which("Xvfb") is not None


@contextmanager
def virtual_display(screen: str = DEFAULT_SCREEN, timeout_s: float = 15.0) -> Iterator[str]:
    """Start Xvfb on a free display number, point ``DISPLAY`` at it, yield ``":N"``; on exit stop
    the server and restore ``DISPLAY``. Raises RuntimeError when Xvfb is missing or fails to start."""
    if not xvfb_available():
        raise RuntimeError("Xvfb is not installed (apt install xvfb)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write_fd)
    previous = os.environ.get("DISPLAY")
    try:
        ready, _, _ = select.select([read_fd], [], [], timeout_s)
        number = os.read(read_fd, 64).decode().strip() if ready else ""
        if not number:
            proc.kill()
            err = proc.communicate(timeout=5)[1].decode(errors="replace")[-500:]
            raise RuntimeError(f"Xvfb did not start: {err}")
        os.environ["DISPLAY"] = f":{number}"
        yield os.environ["DISPLAY"]
    finally:
        os.close(read_fd)
        if previous is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = previous
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
