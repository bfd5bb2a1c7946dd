"""Metrics, settings store, sources, worker session and cluster matching of live_detect."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
from live_detect_signals import linear_probe, make_recording, spaced_spikes

from phy_plugins.live_detect import ThresholdConfig, detect
from phy_plugins.live_detect import metrics as m
from phy_plugins.live_detect.events import to_events
from phy_plugins.live_detect.matching import ClusterMatcher, match_nearest
from phy_plugins.live_detect.scoring import match_events
from phy_plugins.live_detect.session import DetectionSession
from phy_plugins.live_detect.settings import SettingsStore
from phy_plugins.live_detect.sources import ReplaySource, RingBufferSource

SR = 10_000.0


# -- metrics ----------------------------------------------------------------------------
@pytest.mark.parametrize("freq", [180.0, 730.0, 1234.0, 2500.0])
def test_peak_frequency_of_a_sine_is_sub_bin_accurate(freq):
    t = np.arange(int(0.02 * SR)) / SR
    x = 3.0 * np.sin(2 * np.pi * freq * t + 0.3)
    assert m.peak_frequency_sinc(x, SR, 50.0) == pytest.approx(freq, rel=0.02)
    assert m.autocorr_frequency(x, SR, 50.0, 4000.0) == pytest.approx(freq, rel=0.03)


def test_simple_metrics_known_values():
    x = np.r_[np.full(10, 2.0), -8.0, np.full(9, 1.0)]
    assert m.baseline(x, 10) == 2.0
    assert m.min_max(x) == (2.0, -8.0)
    t = np.arange(400) / SR
    sine = 5.0 * np.sin(2 * np.pi * 500 * t)
    assert m.envelope(sine) == pytest.approx(5.0, rel=0.05)
    assert m.energy_density(sine, SR) == pytest.approx(5.0 / math.sqrt(2), rel=0.05)
    assert m.energy_density(np.full(50, 3.0), SR) == 0.0


@pytest.mark.parametrize("bad", [np.array([]), np.array([1.0, np.nan, 2.0, 3.0]), np.zeros(50)])
def test_metrics_return_zero_on_invalid_input(bad):
    assert m.peak_frequency_sinc(bad, SR) == 0.0
    assert m.autocorr_frequency(bad, SR, 50, 4000) == 0.0
    if bad.size == 0 or not np.all(np.isfinite(bad)):
        assert m.baseline(bad, 5) == 0.0 and m.min_max(bad) == (0.0, 0.0)
        assert m.energy_density(bad, SR) == 0.0 and m.envelope(bad) == 0.0
    assert m.peak_frequency_sinc(np.ones(10), 0.0) == 0.0 and m.energy_density(np.ones(10), -1) == 0.0


def test_events_carry_the_seed_fields():
    rng = np.random.default_rng(0)
    x = make_recording(rng, 20_000, 1, SR, [(6000, 0, 120.0), (9000, 0, 120.0)], noise_sd=5.0)
    evs = to_events(detect(x, SR))
    assert [e.peak_index for e in evs] == [6000, 9000]
    e = evs[1]
    assert e.id == 1 and e.channel == 0 and e.sample_rate == SR
    assert e.first_sample_index == 9000 - 20 and e.first_sample_time_s == pytest.approx(0.898)
    assert e.window_ms == pytest.approx(6.0) and e.pre_ms == pytest.approx(2.0) and e.post_ms == pytest.approx(4.0)
    assert e.crossing_index <= e.peak_index and e.crossing_time_s == e.crossing_index / SR
    assert e.interval_since_last_s == pytest.approx(0.3) and math.isnan(evs[0].interval_since_last_s)
    assert e.threshold < 0 and e.amplitude < e.threshold
    assert set(e.properties) >= {"baseline", "energy_density", "envelope", "max", "min", "peak_frequency_hz"}
    assert e.properties["min"] == pytest.approx(e.amplitude)


# -- settings store -----------------------------------------------------------------------
def test_settings_store_notifies_replays_and_unsubscribes():
    store = SettingsStore(ThresholdConfig())
    seen, broken = [], []
    unsub = store.subscribe(seen.append)
    assert seen == [store.get()]

    def bad(_):
        broken.append(1)
        raise RuntimeError("observer bug")

    store.subscribe(bad, replay=True)  # replay call is guarded too
    store.update(auto_k_sigma=6.0)
    assert seen[-1].auto_k_sigma == 6.0 and len(broken) == 2
    store.update(auto_k_sigma=6.0)  # no change -> no notification
    assert len(seen) == 2
    unsub()
    unsub()
    store.update(polarity="pos")
    assert len(seen) == 2 and store.get().polarity == "pos"
    with pytest.raises(ValueError):
        store.update(polarity="sideways")
    assert store.get().polarity == "pos"


def test_settings_store_is_thread_safe():
    store = SettingsStore(ThresholdConfig())
    seen = []
    store.subscribe(lambda s: seen.append(s.auto_k_sigma), replay=False)

    def writer(base):
        for i in range(200):
            store.update(auto_k_sigma=base + i * 1e-3)

    threads = [threading.Thread(target=writer, args=(b,)) for b in (3.0, 5.0, 7.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 600
    assert store.get().auto_k_sigma in {3.199, 5.199, 7.199}


# -- sources ------------------------------------------------------------------------------
def test_replay_source_paces_with_its_clock():
    now = [100.0]
    src = ReplaySource(np.zeros((1000, 2)), SR, start=200, chunk_ms=10, speed=2.0, clock=lambda: now[0])
    assert src.read(timeout=0.0) is None  # first chunk is due 5 ms after start
    now[0] += 0.005
    start, chunk = src.read(timeout=0.0)
    assert start == 200 and chunk.shape == (100, 2)
    fast = ReplaySource(np.arange(2500).reshape(-1, 1), SR, chunk_ms=10, speed=0)
    got = []
    while not fast.exhausted:
        got.append(fast.read())
    assert [s for s, _ in got] == list(range(0, 2500, 100))
    assert np.concatenate([c for _, c in got]).ravel().tolist() == list(range(2500))


def test_ring_buffer_overrun_is_counted_and_never_blocks():
    rb = RingBufferSource(2, SR, capacity=100)
    data = np.arange(700).reshape(-1, 2)  # 350 samples
    for i in range(0, 350, 50):
        rb.push(data[i:i + 50])
    start, chunk = rb.read(timeout=0)
    assert start == 250 and np.array_equal(chunk, data[250:350]) and rb.overrun_samples == 250
    rb.push(data[:30])
    assert rb.read(timeout=0)[0] == 350
    assert rb.read(timeout=0) is None and not rb.exhausted
    rb.close()
    assert rb.exhausted
    with pytest.raises(ValueError):
        rb.push(np.zeros((5, 3)))


def test_ring_buffer_fed_by_an_acquisition_thread_matches_offline():
    rng = np.random.default_rng(3)
    n_ch = 4
    spikes = spaced_spikes(rng, 30_000, n_ch, 60, 200, (80.0, 160.0), margin=100)
    x = np.round(make_recording(rng, 30_000, n_ch, SR, spikes, noise_sd=8.0)).astype(np.int16)
    pos = linear_probe(n_ch)
    rb = RingBufferSource(n_ch, SR, capacity=len(x))  # large enough: nothing may be lost
    session = DetectionSession(rb, SettingsStore(ThresholdConfig()), pos, queue_size=10_000)

    def acquire():
        for i in range(0, len(x), 137):
            rb.push(x[i:i + 137])
            if i % 2740 == 0:
                time.sleep(0.001)
        rb.close()

    session.start_thread()
    producer = threading.Thread(target=acquire)
    producer.start()
    producer.join()
    assert session.join(30)
    offline = detect(x, SR, pos)
    got = session.drain()
    stats = session.stats()
    assert stats.dropped == 0 and stats.gap_samples == 0 and stats.events == len(offline)
    assert [e.peak_index for e in got] == offline.peak_index.tolist()
    assert np.array_equal(np.stack([e.samples for e in got]), offline.waveforms)


def test_session_drops_and_counts_when_consumer_lags():
    rng = np.random.default_rng(4)
    spikes = spaced_spikes(rng, 40_000, 2, 100, 150, (100.0, 150.0), margin=100)
    x = make_recording(rng, 40_000, 2, SR, spikes, noise_sd=5.0)
    session = DetectionSession(ReplaySource(x, SR, speed=0), SettingsStore(ThresholdConfig()),
                               linear_probe(2), queue_size=10, display_channels=[1])
    stats = session.run()  # nobody drains
    assert stats.events >= 90 and len(session.queue) == 10
    assert stats.dropped == stats.events - 10 and not stats.running
    samples, channels, trace = session.history.snapshot()  # min/max of 5-sample bins, last second
    blocks = x[-int(SR):, 1].reshape(-1, 5)
    assert channels == [1] and samples[0] == 40_000 - int(SR) and samples[-1] == 40_000 - 1
    assert np.array_equal(trace[0::2, 0], blocks.min(1)) and np.array_equal(trace[1::2, 0], blocks.max(1))
    assert session.drain()[-1].peak_index == detect(x, SR, linear_probe(2)).peak_index[-1]


def test_session_applies_settings_changes_and_restarts_on_cold_ones():
    rng = np.random.default_rng(5)
    x = make_recording(rng, 60_000, 1, SR, [(t, 0, 70.0) for t in range(10_000, 60_000, 2000)], noise_sd=8.0)
    src = ReplaySource(x, SR, chunk_ms=100, speed=0)
    store = SettingsStore(ThresholdConfig())
    session = DetectionSession(src, store)
    while src.position < 30_000:
        session._process(*src.read(0))
    store.update(auto_k_sigma=50.0)  # hot: nothing more above threshold
    store.update(window_post_s=0.003)  # cold: detector rebuilt at the current position
    while not src.exhausted:
        session._process(*src.read(0))
    peaks = [e.peak_index for e in session.drain()]
    assert peaks and max(peaks) < 30_000 and session.stats().restarts == 1
    session.close()


# -- matching -----------------------------------------------------------------------------
def test_matcher_matches_within_tolerance_on_nearby_channels():
    pos = linear_probe(8, pitch_um=25.0)
    spike_t = np.array([100, 200, 300, 400, 500])
    spike_c = np.array([1, 1, 2, 2, 1])
    matcher = ClusterMatcher(spike_t, spike_c, {1: 1, 2: 6}, pos, SR, tol_ms=0.5, radius_um=60.0)
    got = matcher.match(np.array([103, 206, 300, 398, 400, 505]), np.array([2, 1, 5, 2, 6, 1]))
    # 103: cluster 1 at ch1 (25 um), 206: too late, 300: cluster 2 (ch6 vs ch5), 398: ch2 too far from ch6
    # 400: matches, 505: within 5 samples
    assert got.tolist() == [1, -1, 2, -1, 2, 1]
    matcher.mark_range(0, 1000)
    assert matcher.recall() == {1: (2, 3), 2: (2, 2)}
    assert matcher.match(np.array([100]), np.array([1])).tolist() == [-1]  # already used
    matcher.set_clusters(np.array([1, 1, 1, 1, 1]), {1: 1})
    assert matcher.recall() == {1: (4, 5)}
    with pytest.raises(ValueError):
        ClusterMatcher(np.array([5, 1]), np.array([0, 0]), {0: 0}, pos, SR)


def test_match_nearest_ties_and_one_to_one():
    """Nearest in time first, then in space; each item of b is used once; channel -1 never matches."""
    pos = linear_probe(8, pitch_um=25.0)
    t_b = np.array([90, 110, 110, 200])
    ch_b = np.array([3, 4, 2, -1])
    used = np.zeros(4, bool)
    # 100: 90 and 110 tie in time (10 samples): the nearest channel wins (ch2, 25 um from ch1)
    got = match_nearest(np.array([100, 100, 100, 200]), np.array([1, 1, 1, 0]), t_b, ch_b, pos, 15, 80.0, used)
    assert got.tolist() == [2, 0, 1, -1]  # then ch3 (50 um) before ch4 (75 um); 200: only a ch -1 spike
    assert used.tolist() == [True, True, True, False]
    assert match_events(np.array([100]), np.array([1]), t_b, ch_b, pos, 15, 80.0).tolist() == [True]


def test_engine_imports_without_qt():
    import subprocess
    import sys

    code = ("import sys, phy_plugins.live_detect, phy_plugins.live_detect.session, phy_plugins.live_detect.folder;"
            "print(any(m.startswith(('PyQt5', 'pyqtgraph', 'phy.')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_trace_history_bins_are_chunking_invariant():
    from phy_plugins.live_detect.session import TraceHistory

    x = np.random.default_rng(9).normal(size=(5000, 4)).astype(np.float32)
    whole, parts = TraceHistory([2, 0], 1000, bin=7), TraceHistory([2, 0], 1000, bin=7)
    whole.append(0, x)
    i = 0
    for n in [1, 13, 700, 6, 2000, 9999]:
        parts.append(i, x[i:i + n])
        i += n
    a, b = whole.snapshot(), parts.snapshot()
    assert np.array_equal(a[0], b[0]) and a[1] == b[1] == [2, 0] and np.array_equal(a[2], b[2])
    end = (5000 // 7) * 7
    assert a[0][-1] == end - 1 and np.array_equal(a[2][-1], x[end - 7:end, [2, 0]].max(0))
