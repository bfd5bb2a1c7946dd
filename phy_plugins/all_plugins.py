"""Import every plugin module so phy can find our IPlugin classes (used by the loader shim).

A plugin that fails to import is logged and skipped; the others still load.
"""

from __future__ import annotations

import importlib
import logging

logger = logging.getLogger("phy")

PLUGIN_MODULES = (
    "phy_plugins.classification_reason.plugin",
    "phy_plugins.unitrefine.plugin",
    "phy_plugins.vlm_merge.plugin",
    "phy_plugins.live_detect.plugin",
)

#: module name -> error message, for plugins that could not be imported
IMPORT_ERRORS: dict[str, str] = {}

for _name in PLUGIN_MODULES:
    try:
        importlib.import_module(_name)
    except Exception as _exc:  # noqa: BLE001 - one broken plugin must not hide the others
        IMPORT_ERRORS[_name] = f"{type(_exc).__name__}: {_exc}"
        logger.error("phy-plugins: could not load %s: %s", _name, IMPORT_ERRORS[_name])
