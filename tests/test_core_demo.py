"""`phy-plugins demo` end to end (subprocess, headless): exports and a screenshot of phy."""

import json
import os
import subprocess
import sys

from conftest import copy_dataset
from PyQt5.QtGui import QImage

from phy_plugins.core.tsv import read_cluster_tsv


def test_demo_screenshot_on_a_prepared_folder(synthetic_ks_session, tmp_path):
    ks = copy_dataset(synthetic_ks_session, tmp_path / "demo")
    png = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path / "home")}
    env.pop("DISPLAY", None)
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
    img = QImage(str(png))
    assert img.width() > 1000 and img.height() > 600
    assert not (tmp_path / "home" / ".phy" / "phy_config.py").exists()  # the user's config is untouched
