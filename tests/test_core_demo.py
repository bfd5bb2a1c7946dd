"""`phy-plugins demo` end to end (subprocess, headless): exports and a screenshot of phy.

Without a display the demo draws phy on a virtual Xvfb screen when Xvfb is installed (CI installs it),
so the screenshot shows phy's OpenGL views; else it renders offscreen (those views blank).
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
from conftest import copy_dataset
from PyQt5.QtGui import QImage

from phy_plugins.core.tsv import read_cluster_tsv


def test_demo_screenshot_on_a_prepared_folder(synthetic_ks_session, tmp_path):
    ks = copy_dataset(synthetic_ks_session, tmp_path / "demo")
    png = tmp_path / "shot.png"
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):  # a headless machine
        env.pop(var, None)
    out = subprocess.run([sys.executable, "-m", "phy_plugins", "demo", "--dir", str(ks), "--screenshot", str(png)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "FAILED" not in out.stdout, out.stdout
    # every plugin export is in place, keyed on cluster id
    reasons = read_cluster_tsv(ks, "bc_classificationReason")
    truth = json.loads((ks / "ground_truth.json").read_text())["clusters"]
    assert set(reasons) == {int(c) for c in truth}
    assert read_cluster_tsv(ks, "unitrefine_label") and read_cluster_tsv(ks, "unitrefine_confidence")
    assert (ks / "vlm_merge_reasoning.csv").exists() and (ks / "curation.json").exists()
    assert not (ks / "cluster_group.tsv").exists()  # the user's labels are never written by the demo
    img = QImage(str(png)).convertToFormat(QImage.Format_RGB32)
    assert img.width() > 1000 and img.height() > 600
    if shutil.which("Xvfb"):  # phy's OpenGL views drew: black canvases with coloured spikes
        assert "virtual screen" in out.stdout, out.stdout[-2000:]
        ptr = img.constBits()
        ptr.setsize(img.byteCount())
        bgr = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine())[:, :4 * img.width()]
        px = bgr.reshape(img.height(), img.width(), 4)[..., :3].reshape(-1, 3).astype(int)
        black = (px.max(axis=1) < 20).mean()
        coloured = (px.max(axis=1) - px.min(axis=1) > 64).mean()
        assert black > 0.3 and coloured > 0.02, (black, coloured)  # offscreen: about 0.16 and 0.007
    assert not (tmp_path / "home" / ".phy" / "phy_config.py").exists()  # the user's config is untouched
