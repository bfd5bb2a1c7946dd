"""The per-dataset few-shot bank: the user's own accepted and rejected merges."""
from __future__ import annotations

import json
from pathlib import Path

from phy_plugins.core.atomic import atomic_write_bytes, atomic_write_text

from .prompt import Example
from .render import image_hash
from .results import WORK_DIR, now_iso

BANK_NAME = "fewshot_bank.json"
LABELS = ("merge", "no_merge")


class FewShotBank:
    """Labelled pairs with their evidence image, in ``<ks_dir>/vlm_merge/``."""

    def __init__(self, ks_dir: str | Path):
        self.dir = Path(ks_dir) / WORK_DIR
        self.path = self.dir / BANK_NAME
        self.entries: list[dict] = []
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.entries = [e for e in data.get("entries", []) if e.get("label") in LABELS]
            except (ValueError, OSError, AttributeError) as exc:
                raise ValueError(f"{self.path} is not a valid few-shot bank ({exc}); "
                                 "fix or move it away") from exc

    def add(self, a: int, b: int, label: str, png: bytes, note: str = "") -> dict:
        """Record a labelled pair (replacing an earlier label for the same pair)."""
        if label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {label!r}")
        a, b = sorted((int(a), int(b)))
        h = image_hash(png)
        img = self.dir / "fewshot" / f"pair_{a}_{b}_{h}.png"
        if not img.exists():
            atomic_write_bytes(img, png)
        self.entries = [e for e in self.entries if (e["a"], e["b"]) != (a, b)]
        entry = {"a": a, "b": b, "label": label, "note": note, "image": str(img.relative_to(
            self.dir)), "image_hash": h, "time": now_iso()}
        self.entries.append(entry)
        self._save()
        return entry

    def remove(self, a: int, b: int) -> None:
        a, b = sorted((int(a), int(b)))
        self.entries = [e for e in self.entries if (e["a"], e["b"]) != (a, b)]
        self._save()

    def examples(self, n_merge: int = 2, n_no_merge: int = 2,
                 exclude: set[tuple[int, int]] | None = None) -> list[Example]:
        """The most recent examples of each label whose image is still on disk."""
        out: list[Example] = []
        exclude = exclude or set()
        for label, n in (("merge", n_merge), ("no_merge", n_no_merge)):
            picked = 0
            for e in reversed(self.entries):
                if picked >= n:
                    break
                if e["label"] != label or (e["a"], e["b"]) in exclude:
                    continue
                img = self.dir / e["image"]
                if img.exists():
                    out.append(Example((e["a"], e["b"]), label, img.read_bytes(), e.get("note", "")))
                    picked += 1
        return out

    def __len__(self) -> int:
        return len(self.entries)

    def _save(self) -> None:
        atomic_write_text(self.path, json.dumps({"version": 1, "entries": self.entries}, indent=1))
