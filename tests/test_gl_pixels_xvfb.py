"""phy's OpenGL views really draw: the template GUI with our plugins on an Xvfb screen, pixels read back.

Offscreen (the other GUI tests) phy's canvases are plain widgets and stay blank; here a subprocess runs phy on
its own Xvfb display (``QT_QPA_PLATFORM=xcb``, temporary HOME) and saves each GL view's framebuffer to a PNG.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PyQt5.QtGui import QColor, QImage

from phy_plugins.core.synthetic import generate_dataset
from phy_plugins.core.virtual_display import virtual_display, xvfb_available

TESTS = Path(__file__).resolve().parent
CHILD = TESTS / "gl_pixels_child.py"
CHILD_TIMEOUT_S = 50.0
SCREEN = "1920x1200x24"
# the views named in the brief; each draws the selected cluster in its colour
CHECKED_VIEWS = ("WaveformView", "FeatureView", "CorrelogramView", "AmplitudeView", "TraceView")
MIN_DRAWN = 0.02  # share of pixels that differ from the background colour
MIN_COLOURED = 0.01  # share of saturated pixels (cluster colours; text and grid are grey/white)

pytestmark = pytest.mark.skipif(not xvfb_available(), reason="Xvfb is not installed (apt install xvfb)")


def image_array(image: QImage) -> np.ndarray:
    """The RGB pixels of ``image`` as an (h, w, 3) uint8 array."""
    image = image.convertToFormat(QImage.Format_RGB32)
    w, h = image.width(), image.height()
    ptr = image.constBits()
    ptr.setsize(image.byteCount())
    bgra = np.frombuffer(ptr, np.uint8).reshape(h, image.bytesPerLine())[:, :4 * w].reshape(h, w, 4)
    return bgra[..., 2::-1].copy()


def pixel_stats(rgb: np.ndarray) -> dict:
    """Background (most common colour) and the shares of drawn and of saturated pixels."""
    flat = rgb.reshape(-1, 3).astype(np.int16)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    drawn = np.abs(flat - background).max(axis=1) > 24
    coloured = drawn & (flat.max(axis=1) - flat.min(axis=1) > 64)
    return dict(background=background.tolist(), drawn=float(drawn.mean()), coloured=float(coloured.mean()),
                n_colours=len(colours))


def assert_not_blank(rgb: np.ndarray, name: str) -> None:
    """Fail unless a meaningful part of the image is drawn, some of it in colour."""
    stats = pixel_stats(rgb)
    assert stats["drawn"] >= MIN_DRAWN and stats["coloured"] >= MIN_COLOURED, f"{name} looks blank: {stats}"


def run_child(ks_dir: Path, out_dir: Path, home: Path) -> subprocess.CompletedProcess:
    """Run :data:`CHILD` on a virtual screen; its whole process group is killed on timeout."""
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "HOME": str(home), "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS.parent), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, str(CHILD), str(ks_dir), str(out_dir)]
    with virtual_display(SCREEN) as display:
        env["DISPLAY"] = display
        proc = subprocess.Popen(cmd, env=env, cwd=out_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=10)
            pytest.fail(f"phy under Xvfb did not finish in {CHILD_TIMEOUT_S} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_blank_image_fails_the_check():
    image = QImage(300, 200, QImage.Format_RGB32)
    image.fill(QColor(0, 0, 0))
    rgb = image_array(image)
    assert pixel_stats(rgb)["drawn"] == 0.0
    with pytest.raises(AssertionError, match="looks blank"):
        assert_not_blank(rgb, "blank")
    rgb[:, ::10] = 255  # white grid lines only: drawn but not in a cluster colour
    with pytest.raises(AssertionError, match="looks blank"):
        assert_not_blank(rgb, "grey lines")


def test_phy_gl_views_draw_pixels_under_xvfb(tmp_path):
    ks = generate_dataset(tmp_path / "ks", preset="small", seed=0)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    result = run_child(ks, out_dir, home)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    info = json.loads((out_dir / "views.json").read_text())
    assert info["platform"] == "xcb"
    missing = [v for v in CHECKED_VIEWS if v not in info["views"]]
    assert not missing, f"views not found: {missing}; got {list(info['views'])}"
    for name in CHECKED_VIEWS:
        image = QImage(info["views"][name]["path"])
        assert not image.isNull() and image.width() > 50 and image.height() > 50, (name, info["views"][name])
        assert_not_blank(image_array(image), name)
