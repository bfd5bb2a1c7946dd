"""Read and write ``cluster_<field>.tsv`` files the way phy does: one field per file."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path

from .atomic import atomic_write_text

PROTECTED_FIELDS = frozenset({"group"})


def cluster_tsv_path(ks_dir: str | Path, field: str) -> Path:
    """Path of the TSV phy uses for ``field``."""
    return Path(ks_dir) / f"cluster_{field}.tsv"


def _parse(value: str) -> object:
    """Parse a cell like phylib: int, then float, then the string itself."""
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def read_cluster_tsv(ks_dir: str | Path, field: str) -> dict[int, object]:
    """Return ``{cluster_id: value}`` from ``cluster_<field>.tsv``; empty cells are dropped.

    Ids written as floats (``3.0``, as bombcell does) are accepted. A missing file gives ``{}``.
    """
    path = cluster_tsv_path(ks_dir, field)
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    reader = csv.reader(io.StringIO(text), delimiter="\t")
    header = next(reader, None)
    if not header:
        return {}
    if "cluster_id" not in header:
        raise ValueError(f"{path}: no 'cluster_id' column (header: {header})")
    id_col = header.index("cluster_id")
    val_col = header.index(field) if field in header else (1 if id_col == 0 else 0)
    out: dict[int, object] = {}
    for row in reader:
        if len(row) <= max(id_col, val_col):
            continue
        cid, val = row[id_col].strip(), row[val_col]
        if not cid or val == "":
            continue
        out[int(float(cid))] = _parse(val)
    return out


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    text = str(value)
    if "\t" in text or "\n" in text:
        text = text.replace("\t", " ").replace("\n", " ")
    return text


def write_cluster_tsv(
    ks_dir: str | Path,
    field: str,
    values: Mapping[int, object],
    *,
    allow_group: bool = False,
) -> Path:
    """Atomically write ``cluster_<field>.tsv`` (``cluster_id`` + one field), sorted by id.

    ``None``/NaN become empty cells (phy drops them on load). Writing ``group`` (phy's
    manual labels, ``cluster_group.tsv``) is refused unless ``allow_group`` is True.
    """
    if not field or not field.replace("_", "").isalnum():
        raise ValueError(f"invalid field name {field!r}")
    if field in PROTECTED_FIELDS and not allow_group:
        raise ValueError(
            f"refusing to write cluster_{field}.tsv: it holds the user's manual labels "
            "(pass allow_group=True only on an explicit user action)"
        )
    lines = [f"cluster_id\t{field}"]
    for cid in sorted(int(c) for c in values):
        lines.append(f"{cid}\t{_cell(values[cid])}")
    return atomic_write_text(cluster_tsv_path(ks_dir, field), "\n".join(lines) + "\n")
