"""Accuracy on SpikeInterface's ground-truth generator (skipped when spikeinterface is absent:
it is only an optional 'bench' extra). The full 384-channel check is benchmarks/bench_live_detect.py."""

from __future__ import annotations

import numpy as np
import pytest

from phy_plugins.live_detect import detect
from phy_plugins.live_detect.scoring import score

sc = pytest.importorskip("spikeinterface.core")


def test_recall_and_event_count_on_generated_ground_truth():
    sr = 30_000.0
    rec, sorting = sc.generate_ground_truth_recording(durations=[20.0], sampling_frequency=sr, num_channels=64,
                                                      num_units=20, seed=7)
    x = np.round(rec.get_traces() * 4.0).astype(np.int16)
    pos = rec.get_channel_locations()
    ev = detect(x, sr, pos)
    trains = {u: sorting.get_unit_spike_train(u) for u in sorting.get_unit_ids()}
    res = score(x, trains, ev.peak_index, ev.channel, pos, sr)
    assert res["n_big"] >= 5
    assert res["recall_big_pooled"] >= 0.95
    assert res["events_per_gt_spike"] <= 1.1
    # streaming in 10 ms chunks gives the same events
    x3 = x[:int(sr) * 3]
    ev10 = detect(x3, sr, pos, chunk_size=300)
    ev1 = detect(x3, sr, pos)
    np.testing.assert_array_equal(ev10.peak_index, ev1.peak_index)
