"""install/uninstall round trip in a temporary phy config folder, keeping the user's own lines."""

import json
import subprocess
import sys

from phy.utils.config import load_config

from phy_plugins import PLUGIN_CLASS_NAMES
from phy_plugins.core.install import BACKUP_SUFFIX, SHIM_NAME, install, status, uninstall

USER_CONFIG = """# my own phy config
c = get_config()
c.Plugins.dirs = [r'/opt/lab/phy_plugins_dir']
c.TemplateGUI.plugins = ['MyLabPlugin']
c.TemplateGUI.n_spikes_waveforms = 250
"""


def test_round_trip_preserves_user_lines(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    conf = cfg / "phy_config.py"
    conf.write_text(USER_CONFIG)

    done = install(cfg)
    assert done and status(cfg).installed
    text = conf.read_text()
    assert text.startswith(USER_CONFIG)
    assert (cfg / ("phy_config.py" + BACKUP_SUFFIX)).read_text() == USER_CONFIG
    shim = cfg / "plugins" / SHIM_NAME
    assert shim.exists() and shim.stem != "phy_plugins"

    loaded = load_config(conf)
    assert loaded.TemplateGUI.plugins == ["MyLabPlugin", *PLUGIN_CLASS_NAMES]
    assert loaded.TemplateGUI.n_spikes_waveforms == 250
    assert loaded.Plugins.dirs == ["/opt/lab/phy_plugins_dir", str(cfg / "plugins")]

    assert install(cfg) == []  # idempotent
    assert conf.read_text() == text

    done = uninstall(cfg)
    assert len(done) == 2
    assert conf.read_text() == USER_CONFIG
    assert not shim.exists()
    assert uninstall(cfg) == []


def test_install_into_fresh_dir_and_uninstall_removes_what_it_created(tmp_path):
    cfg = tmp_path / "fresh"
    install(cfg)
    loaded = load_config(cfg / "phy_config.py")
    assert list(loaded.TemplateGUI.plugins) == list(PLUGIN_CLASS_NAMES)
    assert str(cfg / "plugins") in loaded.Plugins.dirs
    uninstall(cfg)
    assert not (cfg / "phy_config.py").exists()


def test_block_survives_a_lazy_plugins_value(tmp_path):
    cfg = tmp_path / "lazy"
    cfg.mkdir()
    (cfg / "phy_config.py").write_text("c = get_config()\n")
    install(cfg)
    loaded = load_config(cfg / "phy_config.py")
    assert list(loaded.TemplateGUI.plugins) == list(PLUGIN_CLASS_NAMES)


def test_cli_install_doctor_uninstall(tmp_path):
    cfg = tmp_path / "cli"
    run = [sys.executable, "-m", "phy_plugins"]
    out = subprocess.run([*run, "install", "--config-dir", str(cfg), "--no-warm-up"], capture_output=True, text=True,
                         check=True)
    assert "wrote loader" in out.stdout
    doc = subprocess.run([*run, "doctor", "--config-dir", str(cfg)], capture_output=True, text=True)
    assert "loader shim:   present" in doc.stdout
    for name in PLUGIN_CLASS_NAMES:
        assert "-> phy_plugins." in doc.stdout and name in doc.stdout
    assert "(not ours)" not in doc.stdout
    subprocess.run([*run, "uninstall", "--config-dir", str(cfg)], capture_output=True, text=True, check=True)
    doc = subprocess.run([*run, "doctor", "--config-dir", str(cfg)], capture_output=True, text=True)
    assert doc.returncode == 1 and "loader shim:   MISSING" in doc.stdout


def test_install_compiles_every_kernel_phy_will_use(tmp_path):
    """In a fresh process, `install` runs each numba kernel once (int16 and float32 traces for the
    detector), so phy never stops to compile one; with --no-warm-up it compiles nothing."""
    code = """if True:
        import json, sys
        from phy_plugins.cli import main
        from phy_plugins.classification_reason import kernel as reason_kernel
        from phy_plugins.live_detect import kernel as detect_kernel
        main(["install", "--config-dir", sys.argv[1], *sys.argv[2:]])
        names = ["detect_rows", "apply_refractory", "gather", "compact_rows"]
        sigs = {n: [str(s[0]) for s in getattr(detect_kernel, n).signatures] for n in names}
        sigs["classify"] = len(reason_kernel.classify.signatures)
        print(json.dumps(sigs))
    """
    run = [sys.executable, "-c", code, str(tmp_path / "cfg")]
    out = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert "ready: classification_reason" in out
    sigs = json.loads(out.strip().splitlines()[-1])
    assert sorted(sigs["detect_rows"]) == ["array(float32, 2d, C)", "array(int16, 2d, C)"]
    assert all(sigs[n] for n in ("apply_refractory", "gather", "compact_rows")) and sigs["classify"] == 1
    out = subprocess.run([*run, "--no-warm-up"], capture_output=True, text=True, check=True).stdout
    sigs = json.loads(out.strip().splitlines()[-1])
    assert not any(sigs[n] for n in ("detect_rows", "compact_rows", "classify")), sigs
