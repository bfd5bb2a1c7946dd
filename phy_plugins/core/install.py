"""Install the bundle into a phy config folder (``~/.phy``) and remove it again.

``install`` writes a loader shim into ``<config>/plugins/`` (named unlike the package, or phy's
module loading breaks) and appends one marked block to ``phy_config.py`` that adds our plugin
class names to ``c.TemplateGUI.plugins``. Every existing line is kept, a backup is written
before the first change, and running it twice changes nothing. ``uninstall`` removes exactly
the shim and the block.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import PLUGIN_CLASS_NAMES
from .atomic import atomic_write_text

SHIM_NAME = "phy_plugins_bundle_loader.py"
BLOCK_START = "# >>> phy-plugins >>> (managed by `phy-plugins install`; `phy-plugins uninstall` removes it)"
BLOCK_END = "# <<< phy-plugins <<<"
CREATED_MARK = "# phy-plugins created this file"
BACKUP_SUFFIX = ".phy-plugins.bak"

SHIM_TEXT = '''"""phy-plugins loader (written by `phy-plugins install`, removed by `phy-plugins uninstall`).

Importing the package registers its phy plugin classes; failures are logged, never raised.
"""
import logging

try:
    import phy_plugins.all_plugins  # noqa: F401
except Exception as exc:  # pragma: no cover - depends on the user's environment
    logging.getLogger("phy").error("phy-plugins could not be loaded: %s: %s", type(exc).__name__, exc)
'''


def _default_config_text(config_dir: Path) -> str:
    from phy.utils.config import _default_config

    return _default_config(config_dir=config_dir)


def config_block(config_dir: Path, names: tuple[str, ...] = PLUGIN_CLASS_NAMES) -> str:
    """The block added to ``phy_config.py``; it never raises inside phy."""
    plugins_dir = str(config_dir / "plugins")
    return "\n".join([
        BLOCK_START,
        "try:",
        f"    _pp_names = {list(names)!r}",
        "    _pp_cur = c.TemplateGUI.plugins if isinstance(c.TemplateGUI.plugins, list) else []",
        "    c.TemplateGUI.plugins = _pp_cur + [n for n in _pp_names if n not in _pp_cur]",
        "    _pp_dirs = c.Plugins.dirs if isinstance(c.Plugins.dirs, list) else []",
        f"    if r'{plugins_dir}' not in _pp_dirs:",
        f"        c.Plugins.dirs = _pp_dirs + [r'{plugins_dir}']",
        "except Exception as _pp_exc:  # never break the user's phy config",
        "    import logging",
        "    logging.getLogger('phy').error('phy-plugins config block failed: %s', _pp_exc)",
        BLOCK_END,
    ]) + "\n"


def strip_block(text: str) -> str:
    """Remove our block (and the created-file mark) from a config text."""
    out: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        s = line.rstrip("\n")
        if s == BLOCK_START:
            inside = True
            if out and out[-1] == "\n":  # the blank line install put before the block
                out.pop()
            continue
        if s == BLOCK_END and inside:
            inside = False
            continue
        if not inside and s != CREATED_MARK:
            out.append(line)
    return "".join(out)


@dataclass
class InstallStatus:
    config_dir: Path
    shim_path: Path
    config_path: Path
    shim_installed: bool
    config_block_present: bool

    @property
    def installed(self) -> bool:
        return self.shim_installed and self.config_block_present


def status(config_dir: str | Path) -> InstallStatus:
    cfg = Path(config_dir)
    shim = cfg / "plugins" / SHIM_NAME
    conf = cfg / "phy_config.py"
    text = conf.read_text(encoding="utf-8") if conf.exists() else ""
    return InstallStatus(cfg, shim, conf, shim.exists(), BLOCK_START in text)


def install(config_dir: str | Path) -> list[str]:
    """Install into ``config_dir``; return what was done (empty when already installed)."""
    cfg = Path(config_dir).expanduser()
    done: list[str] = []
    shim = cfg / "plugins" / SHIM_NAME
    if not shim.exists() or shim.read_text(encoding="utf-8") != SHIM_TEXT:
        atomic_write_text(shim, SHIM_TEXT)
        done.append(f"wrote loader {shim}")
    conf = cfg / "phy_config.py"
    if conf.exists():
        old = conf.read_text(encoding="utf-8")
        base = strip_block(old)
    else:
        old = None
        base = CREATED_MARK + "\n" + _default_config_text(cfg)
    sep = "" if not base or base.endswith("\n") else "\n"
    new = base + sep + "\n" + config_block(cfg)
    if new != old:
        if old is not None:
            backup = conf.with_name(conf.name + BACKUP_SUFFIX)
            if not backup.exists() or BLOCK_START not in old:
                shutil.copy2(conf, backup)
                done.append(f"backed up {conf} to {backup}")
        atomic_write_text(conf, new)
        done.append(f"{'updated' if old is not None else 'created'} {conf}")
    return done


def uninstall(config_dir: str | Path) -> list[str]:
    """Remove the shim and the config block; return what was done."""
    cfg = Path(config_dir).expanduser()
    done: list[str] = []
    shim = cfg / "plugins" / SHIM_NAME
    if shim.exists():
        shim.unlink()
        done.append(f"removed {shim}")
    conf = cfg / "phy_config.py"
    if conf.exists():
        old = conf.read_text(encoding="utf-8")
        if BLOCK_START in old:
            created = CREATED_MARK in old
            rest = strip_block(old)
            if created and rest.strip() == _default_config_text(cfg).strip():
                conf.unlink()
                done.append(f"removed {conf} (phy-plugins had created it)")
            else:
                atomic_write_text(conf, rest)
                done.append(f"removed the phy-plugins block from {conf}")
    return done
