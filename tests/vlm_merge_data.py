"""Fixtures for the vlm_merge tests: the generated small dataset without bombcell (fast)."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHARED, copy_dataset  # noqa: F401 - SHARED: real data beside the repository


@pytest.fixture(scope="session")
def vm_ks_session(tmp_path_factory) -> Path:
    """Generated small dataset (seed 0) with ground truth. Read-only."""
    from phy_plugins.core.synthetic import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("vm") / "ks", preset="small", seed=0)


@pytest.fixture
def vm_ks(vm_ks_session: Path, tmp_path: Path) -> Path:
    """A writable copy (the raw file is symlinked)."""
    return copy_dataset(vm_ks_session, tmp_path / "ks")


@pytest.fixture(scope="session")
def vm_ks_rendered(vm_ks_session: Path) -> Path:
    """The session dataset with every candidate image pre-rendered (threshold 0.93, k=2), so
    copies made by :func:`vm_ks` reuse them (images are keyed by evidence content)."""
    from phy_plugins.vlm_merge import pipeline
    from phy_plugins.vlm_merge.evidence import load_sorting

    cfg = pipeline.RunConfig(model="offline", threshold=0.93, k=2)
    pipeline.run(load_sorting(vm_ks_session), vm_ks_session, cfg, dry_run=True)
    return vm_ks_session
