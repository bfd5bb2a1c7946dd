"""Shared fixtures: a generated dataset with bombcell results, and a real phy GUI offscreen."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# Before anything imports Qt or phy: no display, no user config, no plots on screen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["HOME"] = tempfile.mkdtemp(prefix="phy-plugins-home-")
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("OPENAI_BASE_URL", None)

import pytest  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = SHARED / "data"


def copy_dataset(src: Path, dst: Path) -> Path:
    """Copy a dataset folder; the large raw file is symlinked (tests never write it)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("recording.dat", ".phy"))
    if (src / "recording.dat").exists():
        os.symlink(src / "recording.dat", dst / "recording.dat")
    return dst


@pytest.fixture(scope="session")
def synthetic_ks_session(tmp_path_factory) -> Path:
    """The small generated dataset (seed 0) with bombcell already run. Do not modify."""
    from phy_plugins.core.bombcell_run import run_bombcell
    from phy_plugins.core.synthetic import generate_dataset

    d = generate_dataset(tmp_path_factory.mktemp("synthetic") / "ks", preset="small", seed=0)
    run_bombcell(d)
    return d


@pytest.fixture
def synthetic_ks(synthetic_ks_session: Path, tmp_path: Path) -> Path:
    """A private, writable copy of :func:`synthetic_ks_session`."""
    return copy_dataset(synthetic_ks_session, tmp_path / "ks")


@pytest.fixture
def phy_gui(qtbot, tmp_path: Path):
    """Factory: ``phy_gui(ks_dir, plugins=[...]) -> (controller, gui)``, closed at teardown."""
    from phy_plugins.core.phy_session import close_phy, open_phy

    opened = []

    def make(ks_dir: Path, plugins: list[str] | None = None, **kwargs):
        from phy_plugins import all_plugins  # noqa: F401 - registers our plugin classes

        kwargs.setdefault("config_dir", tmp_path / f"phy-config-{len(opened)}")
        kwargs.setdefault("clear_state", True)
        kwargs.setdefault("clear_cache", True)
        kwargs.setdefault("enable_threading", False)
        controller, gui = open_phy(ks_dir, plugins=plugins, **kwargs)
        opened.append((controller, gui))
        return controller, gui

    yield make
    for controller, gui in opened:
        close_phy(controller, gui)
