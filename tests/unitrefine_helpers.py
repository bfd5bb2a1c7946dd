"""Shared helpers for the unitrefine tests (labels of generated folders: ``phy_plugins.unitrefine.demo``)."""

from __future__ import annotations

from pathlib import Path

SHARED_TUTORIAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "unitrefine_tutorial"
