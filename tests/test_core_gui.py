"""The bundle in a real phy TemplateGUI (offscreen): attach, isolation, install route, bad folders."""

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from phy import IPlugin, connect

from phy_plugins import PLUGIN_CLASS_NAMES
from phy_plugins.core.install import install
from phy_plugins.core.phy_safety import FAILURES, isolated
from phy_plugins.core.phy_session import process_events

ALL = list(PLUGIN_CLASS_NAMES)


class PhyPluginsTestOnlyBrokenGuiReadyPlugin(IPlugin):
    """A plugin whose gui_ready handler raises (isolated, as our plugins are)."""

    def attach_to_controller(self, controller):
        @connect
        @isolated
        def on_gui_ready(sender, gui):
            raise RuntimeError("deliberately broken plugin")


def _menus(gui):
    return [a.text() for a in gui.menuBar().actions()]


def assert_all_plugins_active(controller, gui):
    """Each plugin left its visible mark in phy."""
    assert controller.attached_plugins[-4:] == ALL
    cols = controller.supervisor.columns
    assert "bc_classificationReason" in cols, cols
    assert "&AI" in _menus(gui), _menus(gui)
    assert any("LiveDetect" in name for name in controller.view_creator), list(controller.view_creator)
    assert any("unitrefine" in c.lower() for c in cols) or any(
        "UnitRefine" in a.text() for m in gui.menuBar().actions() for a in m.menu().actions()), cols


def test_four_plugins_attach_and_phy_works(phy_gui, synthetic_ks):
    controller, gui = phy_gui(synthetic_ks, plugins=ALL)
    assert_all_plugins_active(controller, gui)
    controller.supervisor.select([1])
    process_events(0.3)
    assert controller.supervisor.selected == [1]


def test_a_broken_plugin_does_not_stop_the_others(phy_gui, synthetic_ks, caplog):
    n_fail = len(FAILURES)
    with caplog.at_level(logging.ERROR, logger="phy"):
        controller, gui = phy_gui(synthetic_ks, plugins=["PhyPluginsTestOnlyBrokenGuiReadyPlugin", *ALL])
    assert "deliberately broken plugin" in caplog.text
    assert len(FAILURES) > n_fail
    assert_all_plugins_active(controller, gui)


def test_missing_bombcell_and_raw_file_give_messages_and_phy_keeps_working(phy_gui, synthetic_ks, caplog):
    shutil.rmtree(synthetic_ks / "bombcell")
    os.unlink(synthetic_ks / "recording.dat")
    for p in synthetic_ks.glob("cluster_*.tsv"):
        p.unlink()
    with caplog.at_level(logging.INFO, logger="phy"):
        controller, gui = phy_gui(synthetic_ks, plugins=ALL)
        controller.supervisor.select([2])
        process_events(0.5)
    assert controller.attached_plugins == ALL
    assert controller.supervisor.selected == [2]
    text = caplog.text.lower()
    assert "bombcell" in text and ("raw" in text or "recording" in text), caplog.text[-2000:]


def test_installed_shim_attaches_through_phy_config(phy_gui, synthetic_ks, tmp_path):
    cfg = tmp_path / "installed-config"
    install(cfg)
    controller, gui = phy_gui(synthetic_ks, plugins=None, config_dir=cfg)
    assert_all_plugins_active(controller, gui)


def test_phy_template_gui_command_attaches_all_four(synthetic_ks, tmp_path):
    """The real `phy template-gui params.py` with a temporary HOME after `phy-plugins install`."""
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    subprocess.run([sys.executable, "-m", "phy_plugins", "install"], env=env, check=True, capture_output=True)
    assert (home / ".phy" / "plugins").is_dir()
    phy_exe = Path(sys.executable).with_name("phy")
    cmd = [str(phy_exe)] if phy_exe.exists() else [sys.executable, "-m", "phy.apps"]
    proc = subprocess.Popen([*cmd, "template-gui", "params.py"], cwd=synthetic_ks, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = synthetic_ks / "phy.log"
    attached: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            text = log.read_text() if log.exists() else ""
            attached = [n for n in ALL if f"Attached plugin {n}." in text]
            if len(attached) == 4:
                break
            time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait(10)
    assert attached == ALL, (log.read_text()[-3000:] if log.exists() else "no phy.log")
