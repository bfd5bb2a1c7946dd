"""User settings for the bundle: ``<phy config dir>/phy_plugins.json``, one section per plugin.

Secrets never go here: API keys come from the environment or a ``.env`` file only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger("phy")
SETTINGS_FILE = "phy_plugins.json"
SECRET_WORDS = ("key", "token", "secret", "password")


def phy_config_dir() -> Path:
    """phy's config folder (``~/.phy``; phy has no other setting for it)."""
    return Path.home() / ".phy"


def load_settings(config_dir: str | Path | None = None) -> dict:
    """All sections; a missing or unreadable file gives ``{}`` (with a logged warning)."""
    path = Path(config_dir or phy_config_dir()) / SETTINGS_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError) as exc:
        logger.warning("phy-plugins: ignoring unreadable %s: %s", path, exc)
        return {}


def plugin_settings(section: str, config_dir: str | Path | None = None) -> dict:
    """The settings of one plugin section (``{}`` if absent)."""
    value = load_settings(config_dir).get(section, {})
    return dict(value) if isinstance(value, dict) else {}


def save_plugin_settings(section: str, values: dict, config_dir: str | Path | None = None) -> Path:
    """Replace one section atomically; refuses keys that look like secrets."""
    from .atomic import atomic_write_text

    bad = [k for k in values if any(w in k.lower() for w in SECRET_WORDS)]
    if bad:
        raise ValueError(f"refusing to store secrets in settings: {bad}")
    path = Path(config_dir or phy_config_dir()) / SETTINGS_FILE
    data = load_settings(config_dir)
    data[section] = values
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
