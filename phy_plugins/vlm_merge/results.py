"""Result rows, ``vlm_merge_reasoning.csv``, SpikeInterface ``curation.json`` v2, and the cache."""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from phy_plugins.core.atomic import atomic_write_text

CSV_NAME = "vlm_merge_reasoning.csv"
CURATION_NAME = "curation.json"
WORK_DIR = "vlm_merge"  # private files (images, cache, few-shot bank) live in <ks_dir>/vlm_merge/
GENERATED_BY = "phy_plugins.vlm_merge"
ERROR = "error"


@dataclass
class PairResult:
    """One judged (or failed) pair. Cluster ids are plain ints; a failure has decision 'error'."""

    cluster_id_1: int
    cluster_id_2: int
    decision: str
    confidence: float | None = None
    reasoning: str = ""
    model: str = ""
    prompt_version: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    image_hash: str = ""
    time: str = ""
    similarity: float | None = None
    error: str = ""
    attempts: int = 0
    evidence_hash: str = ""
    image_file: str = ""
    cached: bool = False

    @property
    def pair(self) -> tuple[int, int]:
        return (self.cluster_id_1, self.cluster_id_2)

    @property
    def merge_score(self) -> float:
        """Probability-like merge score for ranking: merge -> confidence, no_merge ->
        1 - confidence, uncertain -> 0.5, error -> 0."""
        c = 0.5 if self.confidence is None else float(self.confidence)
        return {"merge": c, "no_merge": 1 - c, "uncertain": 0.5}.get(self.decision, 0.0)

    @property
    def ok(self) -> bool:
        return self.decision != ERROR


COLUMNS = [f.name for f in fields(PairResult)]
_TYPES = {f.name: str(f.type) for f in fields(PairResult)}


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _cell(v: object) -> object:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def results_to_csv(results: list[PairResult]) -> str:
    """CSV text, one row per pair (cluster ids written as plain integers)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in results:
        d = asdict(r)
        d["cluster_id_1"], d["cluster_id_2"] = int(r.cluster_id_1), int(r.cluster_id_2)
        w.writerow([_cell(d[c]) for c in COLUMNS])
    return buf.getvalue()


def _parse(name: str, value: str) -> object:
    t = _TYPES[name]
    if value == "":
        return None if "None" in t else ("" if t == "str" else (False if t == "bool" else 0))
    if t == "int":
        return int(float(value))
    if t.startswith("float"):
        return float(value)
    if t == "bool":
        return value.strip().lower() == "true"
    return value


def read_results_csv(path: str | Path) -> list[PairResult]:
    """Read a ``vlm_merge_reasoning.csv`` written by :func:`write_results`."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [PairResult(**{k: _parse(k, v) for k, v in row.items() if k in COLUMNS})
            for row in rows]


def write_results(ks_dir: str | Path, results: list[PairResult]) -> Path:
    """Write ``<ks_dir>/vlm_merge_reasoning.csv`` atomically (sorted by merge score)."""
    ordered = sorted(results, key=lambda r: (-r.merge_score, r.pair))
    return atomic_write_text(Path(ks_dir) / CSV_NAME, results_to_csv(ordered))


def disjoint_merges(results: list[PairResult]) -> tuple[list[PairResult], list[PairResult]]:
    """Merge proposals as disjoint pairs: taken by decreasing confidence, a pair sharing a
    unit with an already chosen pair is deferred (never chained transitively)."""
    chosen, deferred, used = [], [], set()
    for r in sorted((r for r in results if r.decision == "merge"),
                    key=lambda r: (-r.merge_score, r.pair)):
        if used & set(r.pair):
            deferred.append(r)
        else:
            chosen.append(r)
            used |= set(r.pair)
    return chosen, deferred


def curation_dict(unit_ids: list[int], results: list[PairResult]) -> dict:
    """SpikeInterface curation format v2 with the merge proposals (valid for SpikeInterface
    and phy 2.2: disjoint pairs, first id = reference)."""
    chosen, _ = disjoint_merges(results)
    return {
        "format_version": "2",
        "unit_ids": sorted(int(u) for u in unit_ids),
        "label_definitions": {},
        "manual_labels": [],
        "removed": [],
        "merges": [{"unit_ids": [int(r.cluster_id_1), int(r.cluster_id_2)]} for r in chosen],
        "splits": [],
        "generated_by": GENERATED_BY,
    }


def write_curation(ks_dir: str | Path, unit_ids: list[int], results: list[PairResult]) -> Path:
    """Write ``curation.json`` in the dataset folder. A ``curation.json`` that this plugin did
    not write is never overwritten: the proposals then go to ``vlm_merge/curation.json``."""
    ks_dir = Path(ks_dir)
    path = ks_dir / CURATION_NAME
    if path.exists():
        try:
            ours = json.loads(path.read_text(encoding="utf-8")).get("generated_by") == GENERATED_BY
        except (ValueError, AttributeError, OSError):
            ours = False
        if not ours:
            path = ks_dir / WORK_DIR / CURATION_NAME
    text = json.dumps(curation_dict(unit_ids, results), indent=1) + "\n"
    return atomic_write_text(path, text)


class ResultCache:
    """Results keyed by content (evidence hash + model + prompt version + variant, e.g. the
    few-shot examples), in ``<ks_dir>/vlm_merge/cache.json``. Errors are never cached."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._data: dict[str, dict] = {}
        if self.path.exists():
            try:
                self._data = json.loads(self.path.read_text(encoding="utf-8"))
            except (ValueError, OSError):
                self._data = {}  # a corrupt cache is only a cache: start again

    @staticmethod
    def key(evidence_hash: str, model: str, prompt_version: str, variant: str = "") -> str:
        return f"{evidence_hash}|{model}|{prompt_version}|{variant}"

    def get(self, key: str) -> PairResult | None:
        d = self._data.get(key)
        if d is None:
            return None
        try:
            r = PairResult(**{k: v for k, v in d.items() if k in COLUMNS})
        except TypeError:
            return None
        r.cached = True
        return r

    def put(self, key: str, result: PairResult) -> None:
        if result.ok:
            d = asdict(result)
            d["cached"] = False
            self._data[key] = d

    def __len__(self) -> int:
        return len(self._data)

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self._data, indent=0))
