"""The Xvfb virtual screen used by the headless demo: started on a free display, always stopped."""

import os
import subprocess
import sys

import pytest

from phy_plugins.core.virtual_display import virtual_display, xvfb_available

pytestmark = pytest.mark.skipif(not xvfb_available(), reason="Xvfb is not installed (apt install xvfb)")


def test_virtual_display_sets_and_restores_display(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":4242")
    with virtual_display() as display:
        assert os.environ["DISPLAY"] == display != ":4242"
        # a client can talk to it (xdpyinfo may be missing: Qt's own check is in test_core_demo)
        code = "import os, socket; s = socket.socket(socket.AF_UNIX); " \
               "s.connect('/tmp/.X11-unix/X' + os.environ['DISPLAY'][1:]); print('ok')"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
        assert out.stdout.strip() == "ok", out.stderr
    assert os.environ["DISPLAY"] == ":4242"
    sock = "/tmp/.X11-unix/X" + display[1:]
    assert not os.path.exists(sock) or not _listening(sock)


def _listening(path: str) -> bool:
    import socket

    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()
