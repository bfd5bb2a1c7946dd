"""GUI-independent state of the phy plugin: predictions per cluster and the decisions built on them."""

from __future__ import annotations

import math

import pandas as pd

from phy_plugins.unitrefine.tables import apply_label_map

PHY_GROUPS = ("good", "mua", "noise")
# model labels that mean a phy group (UnitRefine's classes and common synonyms)
GROUP_SYNONYMS = {"good": "good", "sua": "good", "mua": "mua", "noise": "noise"}


def phy_group_for(label: object, group_map: dict | None = None) -> str | None:
    """The phy group a model label stands for, or None (e.g. 'neural', 'other', 0/1).

    ``group_map`` (settings) maps other labels, e.g. ``{"1": "good", "0": "mua"}`` for 0/1 models.
    """
    key = str(label).strip()
    by_key = {str(k): v for k, v in (group_map or {}).items()}
    if key in by_key:
        return by_key[key] if by_key[key] in PHY_GROUPS else None
    return GROUP_SYNONYMS.get(key.lower())


class PredictionStore:
    """Latest prediction and confidence of each cluster id (dict lookups for phy's columns)."""

    def __init__(self) -> None:
        self.labels: dict[int, object] = {}
        self.confidences: dict[int, float] = {}

    def update(self, pred: pd.DataFrame) -> list[int]:
        ids = [int(c) for c in pred.index]
        for cid, lab, conf in zip(ids, pred["prediction"], pred["confidence"]):
            self.labels[cid] = lab if not isinstance(lab, float) or not math.isnan(lab) else None
            self.confidences[cid] = round(float(conf), 3)
        return ids

    def clear(self) -> None:
        self.labels.clear()
        self.confidences.clear()

    def label(self, cid: int) -> object:
        lab = self.labels.get(int(cid))
        return None if lab is None else str(lab)

    def confidence(self, cid: int) -> float | None:
        return self.confidences.get(int(cid))

    def rows(self, ids) -> list[dict]:
        """Patches for phy's ``Table.change``."""
        return [{"id": int(c), "ur_label": self.label(c), "ur_conf": self.confidence(c)} for c in ids]

    def plan_labels(self, cluster_ids, threshold: float, group_map: dict | None = None) -> dict[str, list[int]]:
        """{phy group: clusters} for the predictions at or above ``threshold`` that map to a phy group."""
        out: dict[str, list[int]] = {}
        for cid in cluster_ids:
            conf = self.confidences.get(int(cid))
            group = phy_group_for(self.labels.get(int(cid)), group_map)
            if conf is not None and group and conf >= threshold:
                out.setdefault(group, []).append(int(cid))
        return out

    def least_confident(self, cluster_ids) -> list[int]:
        """Cluster ids by increasing confidence (unpredicted last)."""
        return sorted((int(c) for c in cluster_ids),
                      key=lambda c: (self.confidences.get(c) is None, self.confidences.get(c) or 0.0, c))


def training_labels(groups: dict[int, object], label_map: dict[str, str] | None = None) -> pd.Series:
    """phy group labels of the clusters a user labelled (good/mua/noise), optionally mapped to classes."""
    out = {int(c): str(g) for c, g in groups.items() if g is not None and str(g).lower() in PHY_GROUPS}
    return apply_label_map(pd.Series(out, dtype=object), label_map)
