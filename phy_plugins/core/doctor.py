"""``phy-plugins doctor``: versions, config state and which plugins phy would attach."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from .. import PLUGIN_CLASS_NAMES, __version__
from .install import status

PACKAGES = ("phy", "phylib", "bombcell", "numpy", "pandas", "scikit-learn", "skops", "openai", "pyqtgraph",
            "matplotlib", "PyQt5")


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def resolve_plugins(config_dir: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Names listed in the config for TemplateGUI, and what each resolves to (phy's substring lookup)."""
    from phy.utils.config import load_config
    from phy.utils.plugin import discover_plugins, get_plugin

    conf = config_dir / "phy_config.py"
    if not conf.exists():
        return [], []
    config = load_config(conf)
    names = list(config.get("TemplateGUI", {}).get("plugins", []) or [])
    discover_plugins(list(config.get("Plugins", {}).get("dirs", []) or []))
    resolved = []
    for n in names:
        try:
            cls = get_plugin(n)
            resolved.append((n, f"{cls.__module__}.{cls.__name__}"))
        except ValueError:
            resolved.append((n, "NOT FOUND"))
    return names, resolved


def report(config_dir: Path) -> tuple[str, bool]:
    """The doctor's text and whether everything needed is in place."""
    lines = [f"phy-plugins {__version__}"]
    for pkg in PACKAGES:
        lines.append(f"  {pkg:<13} {_version(pkg)}")
    try:
        from PyQt5.QtCore import PYQT_VERSION_STR, QT_VERSION_STR

        lines.append(f"  Qt            {QT_VERSION_STR} (PyQt {PYQT_VERSION_STR})")
    except Exception as exc:  # noqa: BLE001
        lines.append(f"  Qt            unavailable: {exc}")
    st = status(config_dir)
    lines += [
        f"config dir:    {config_dir}",
        f"loader shim:   {'present' if st.shim_installed else 'MISSING'} ({st.shim_path})",
        f"config lines:  {'present' if st.config_block_present else 'MISSING'} ({st.config_path})",
    ]
    ok = st.installed
    from .. import all_plugins

    for mod, err in all_plugins.IMPORT_ERRORS.items():
        lines.append(f"import error:  {mod}: {err}")
        ok = False
    try:
        names, resolved = resolve_plugins(config_dir)
    except Exception as exc:  # noqa: BLE001
        lines.append(f"phy config could not be read: {exc}")
        return "\n".join(lines), False
    lines.append("phy would attach (c.TemplateGUI.plugins):" if names else "phy would attach: none configured")
    for name, target in resolved:
        mine = target.rsplit(".", 1)[-1] in PLUGIN_CLASS_NAMES
        lines.append(f"  {name:<32} -> {target}{'' if mine else '  (not ours)'}")
    missing = [n for n in PLUGIN_CLASS_NAMES if n not in dict(resolved)
               or dict(resolved)[n].rsplit(".", 1)[-1] != n]
    if missing:
        lines.append("not attached: " + ", ".join(missing) + "  (run `phy-plugins install`)")
        ok = False
    return "\n".join(lines), ok
