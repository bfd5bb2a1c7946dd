"""cluster_<field>.tsv I/O: phy's layout, atomic writes, cluster_group.tsv protection."""

import math

import numpy as np
import pytest

from phy_plugins.core.atomic import atomic_write_text
from phy_plugins.core.tsv import read_cluster_tsv, write_cluster_tsv


def test_round_trip_keyed_on_cluster_id(tmp_path):
    values = {7: "MUA: nSpikes<minNumSpikes", 2: "GOOD: passed all thresholds", np.int64(11): 0.5, 3: None,
              4: float("nan")}
    path = write_cluster_tsv(tmp_path, "bc_classificationReason", values)
    lines = path.read_text().splitlines()
    assert lines[0] == "cluster_id\tbc_classificationReason"
    assert [line.split("\t")[0] for line in lines[1:]] == ["2", "3", "4", "7", "11"]
    back = read_cluster_tsv(tmp_path, "bc_classificationReason")
    assert back == {2: "GOOD: passed all thresholds", 7: "MUA: nSpikes<minNumSpikes", 11: 0.5}


def test_reads_bombcell_float_ids_and_phylib_parsing(tmp_path):
    (tmp_path / "cluster_nPeaks.tsv").write_text("cluster_id\tnPeaks\n0.0\t1\n1.0\t\n2.0\t2.5\n3.0\tnan\n")
    got = read_cluster_tsv(tmp_path, "nPeaks")
    assert got[0] == 1 and isinstance(got[0], int)
    assert 1 not in got
    assert got[2] == 2.5
    assert math.isnan(got[3])


def test_missing_file_is_empty_and_bad_header_is_an_error(tmp_path):
    assert read_cluster_tsv(tmp_path, "nothing") == {}
    (tmp_path / "cluster_x.tsv").write_text("id\tx\n1\t2\n")
    with pytest.raises(ValueError, match="cluster_id"):
        read_cluster_tsv(tmp_path, "x")


def test_group_is_protected(tmp_path):
    (tmp_path / "cluster_group.tsv").write_text("cluster_id\tgroup\n1\tgood\n")
    with pytest.raises(ValueError, match="manual labels"):
        write_cluster_tsv(tmp_path, "group", {1: "noise"})
    assert (tmp_path / "cluster_group.tsv").read_text() == "cluster_id\tgroup\n1\tgood\n"
    write_cluster_tsv(tmp_path, "group", {1: "noise"}, allow_group=True)
    assert read_cluster_tsv(tmp_path, "group") == {1: "noise"}


def test_tabs_in_values_cannot_break_the_layout(tmp_path):
    write_cluster_tsv(tmp_path, "note", {1: "a\tb\nc"})
    assert read_cluster_tsv(tmp_path, "note") == {1: "a b c"}


def test_invalid_field_names_are_refused(tmp_path):
    for bad in ("", "a b", "../x", "a/b"):
        with pytest.raises(ValueError):
            write_cluster_tsv(tmp_path, bad, {1: 1})


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    class Boom(str):
        def encode(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_text(target, Boom("new"))
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_write_keeps_normal_permissions(tmp_path):
    import os
    import stat

    new = atomic_write_text(tmp_path / "new.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask
    old = tmp_path / "old.txt"
    old.write_text("a")
    os.chmod(old, 0o640)
    atomic_write_text(old, "b")
    assert stat.S_IMODE(old.stat().st_mode) == 0o640
