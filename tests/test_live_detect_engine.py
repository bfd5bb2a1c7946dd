"""Streaming detector: streaming == offline for any chunking, detection correctness, bad input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_detect_signals import linear_probe, make_recording, spaced_spikes

from phy_plugins.live_detect import EventBatch, StreamingDetector, ThresholdConfig, detect
from phy_plugins.live_detect.noise import NoiseTracker, mad_sigma

SR = 10_000.0
FIELDS = ("event_id", "peak_index", "channel", "amplitude", "threshold", "sigma", "crossing_index",
          "interval", "waveforms")


def stream(x: np.ndarray, sizes: list[int], positions=None, **settings) -> EventBatch:
    """Feed ``x`` in chunks cycling through ``sizes``."""
    det = StreamingDetector(SR, x.shape[1], positions, ThresholdConfig(**settings))
    out, i, k = [], 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        out.append(det.process(x[i:i + n]))
        i += n
        k += 1
    out.append(det.flush())
    return EventBatch.concat(out)


def assert_same(a: EventBatch, b: EventBatch) -> None:
    assert len(a) == len(b)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# short noise blocks so that several threshold refreshes happen inside each example
FAST_NOISE = dict(noise_window_s=0.03, noise_refresh_s=0.1, noise_stride=3)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n_ch=st.integers(1, 6),
       n_samples=st.integers(50, 6000),
       sizes=st.lists(st.integers(1, 2500), min_size=1, max_size=5),
       polarity=st.sampled_from(["neg", "pos", "both"]),
       use_filter=st.booleans(), int16=st.booleans(), fixed=st.booleans(),
       k=st.floats(2.5, 6.0), refractory_ms=st.floats(0.0, 4.0))
def test_streaming_equals_offline_for_any_chunking(seed, n_ch, n_samples, sizes, polarity, use_filter,
                                                   int16, fixed, k, refractory_ms):
    rng = np.random.default_rng(seed)
    spikes = spaced_spikes(rng, n_samples, n_ch, 40, 25, (40.0, 150.0))
    x = make_recording(rng, n_samples, n_ch, SR, spikes)
    if int16:
        x = np.round(x).astype(np.int16)
    settings = dict(FAST_NOISE, polarity=polarity, auto_k_sigma=k, refractory_s=refractory_ms / 1e3,
                    filter_band=(300.0, 3000.0) if use_filter else None)
    if fixed:
        settings["per_channel_thresholds"] = tuple(rng.uniform(20, 60, n_ch))
    pos = linear_probe(n_ch)
    whole = detect(x, SR, pos, chunk_size=len(x), **settings)
    chunked = stream(x, sizes, pos, **settings)
    assert_same(whole, chunked)
    # every event is emitted once, in order, with a full-length waveform
    assert np.all(np.diff(whole.event_id) == 1) and np.all(np.diff(whole.peak_index) >= 0)
    assert whole.waveforms.shape == (len(whole), whole.n_pre + int(round(0.004 * SR)))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n_ch=st.integers(1, 20), n_samples=st.integers(50, 4000),
       sizes=st.lists(st.integers(1, 1500), min_size=1, max_size=4), room=st.integers(0, 3))
def test_waveforms_are_the_edge_padded_signal_around_each_peak(seed, n_ch, n_samples, sizes, room):
    """Waveforms copied by the kernel and those gathered later (window not complete, or the
    kernel's buffer too small: ``room``) are both the signal around the peak."""
    rng = np.random.default_rng(seed)
    x = np.round(make_recording(rng, n_samples, n_ch, SR, spaced_spikes(rng, n_samples, n_ch, 40, 25, (40.0, 150.0))))
    x = x.astype(np.int16)
    det = StreamingDetector(SR, n_ch, linear_probe(n_ch), ThresholdConfig(**FAST_NOISE))
    det._room = room  # force the fallback (and the room's growth)
    out, i, k = [], 0, 0
    while i < len(x):
        out.append(det.process(x[i:i + sizes[k % len(sizes)]]))
        i += sizes[k % len(sizes)]
        k += 1
    ev = EventBatch.concat(out + [det.flush()])
    width = ev.waveforms.shape[1]
    pad = np.pad(x, ((ev.n_pre, width), (0, 0)), mode="edge").astype(np.float32)
    for p, c, w in zip(ev.peak_index, ev.channel, ev.waveforms):
        np.testing.assert_array_equal(w, pad[p:p + width, c])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_samples=st.integers(1, 3000),
       sizes=st.lists(st.integers(1, 700), min_size=1, max_size=4))
def test_noise_tracker_is_chunking_invariant(seed, n_samples, sizes):
    x = np.random.default_rng(seed).normal(0, 1, (n_samples, 3))

    def run(sz):
        tr = NoiseTracker(7, block=500, window=200, stride=3)
        out, i, j = [], 0, 0
        while i < n_samples:
            n = sz[j % len(sz)]
            out += tr.feed(7 + i, x[i:i + n])
            i, j = i + n, j + 1
        last = tr.flush()
        return out + ([last] if last else [])

    a, b = run([n_samples]), run(sizes)
    assert [e.apply_from for e in a] == [e.apply_from for e in b]
    for ea, eb in zip(a, b, strict=True):
        np.testing.assert_array_equal(ea.sigma, eb.sigma)
    assert [e.apply_from for e in a][:3] == [7, 7 + 1000, 7 + 1500][:len(a)]


def test_finds_every_large_spike_once_at_its_trough():
    rng = np.random.default_rng(1)
    n, n_ch = 40_000, 16
    spikes = spaced_spikes(rng, n, n_ch, 200, 80, (80.0, 200.0), margin=200)
    x = make_recording(rng, n, n_ch, SR, spikes, noise_sd=10.0)
    ev = detect(x, SR, linear_probe(n_ch), radius_um=50.0)
    truth = np.array([t for t, _, _ in spikes])
    chans = np.array([c for _, c, _ in spikes])
    # each injected spike -> exactly one event at its trough on its channel (noise sigma 10, >= 8 sigma)
    hits = [np.flatnonzero((np.abs(ev.peak_index - t) <= 1) & (ev.channel == c))
            for t, c in zip(truth, chans, strict=True)]
    assert all(len(h) == 1 for h in hits)
    matched = np.concatenate(hits)
    assert np.mean(ev.peak_index[matched] == truth) > 0.95
    # neighbouring channels do not report the same spike again
    near_truth = np.min(np.abs(ev.peak_index[:, None] - truth[None, :]), axis=1) <= 10
    assert near_truth.sum() == len(truth)
    # the waveform is aligned on the peak and its trough is the event amplitude
    np.testing.assert_allclose(ev.waveforms[:, ev.n_pre], ev.amplitude)
    assert np.all(ev.crossing_index <= ev.peak_index)
    assert np.all(ev.crossing_index >= ev.peak_index - ev.n_pre)


def test_without_spatial_exclusion_neighbours_report_duplicates():
    rng = np.random.default_rng(2)
    n, n_ch = 20_000, 8
    spikes = [(t, 4, 300.0) for t in range(1000, 19000, 900)]
    x = make_recording(rng, n, n_ch, SR, spikes, noise_sd=5.0)
    pos = linear_probe(n_ch)
    exclusive = detect(x, SR, pos, radius_um=50.0, auto_k_sigma=7.0)
    per_channel = detect(x, SR, pos, radius_um=0.0, auto_k_sigma=7.0)
    assert len(exclusive) == len(spikes)
    assert len(per_channel) > 2 * len(spikes)


def test_spike_straddling_every_chunk_boundary():
    rng = np.random.default_rng(3)
    n = 12_000
    spikes = [(t, 0, 200.0) for t in range(1000, 11_000, 1000)]  # troughs exactly on chunk edges
    x = make_recording(rng, n, 2, SR, spikes, noise_sd=5.0)
    for size in (1000, 999, 1001, 7):
        ev = stream(x, [size], linear_probe(2))
        np.testing.assert_array_equal(ev.peak_index, [t for t, _, _ in spikes])
        assert ev.waveforms.shape[1] == ev.n_pre + 40 and np.all(np.isfinite(ev.waveforms))


def test_refractory_and_polarity():
    rng = np.random.default_rng(4)
    x = make_recording(rng, 10_000, 1, SR, [(3000, 0, 200.0), (3015, 0, 150.0), (7000, 0, 200.0)], noise_sd=3.0)
    assert detect(x, SR, refractory_s=0.003).peak_index.tolist() == [3000, 7000]
    assert detect(x, SR, refractory_s=0.001, sweep_s=0.0005).peak_index.tolist() == [3000, 3015, 7000]
    pos = detect(-x, SR, polarity="pos")
    assert pos.peak_index.tolist() == [3000, 7000] and np.all(pos.amplitude > 0) and np.all(pos.threshold > 0)
    both = detect(np.r_[x[:5000], -x[5000:]], SR, polarity="both")
    assert both.peak_index.tolist() == [3000, 7000]
    assert both.amplitude[0] < 0 < both.amplitude[1]


def _brute_force_peaks(x, thr, polarity, pos, radius_um, sweep):
    """The peak rule written directly: score >= 1 and no neighbour within +-sweep beats it."""
    v = x.astype(np.float32)
    inv = (1.0 / thr).astype(np.float32)
    z = {"neg": -v, "pos": v, "both": np.abs(v)}[polarity] * inv
    near = np.hypot(*(pos[:, None, :] - pos[None, :, :]).transpose(2, 0, 1)) <= radius_um
    peaks = []
    for r, c in zip(*np.nonzero(z >= 1.0), strict=True):
        s = z[r, c]
        a0, a1 = max(r - sweep, 0), min(r + sweep + 1, len(z))
        win = z[a0:a1][:, near[c]]
        rows = np.arange(a0, a1)[:, None]
        chans = np.flatnonzero(near[c])[None, :]
        beats = (win > s) | ((win == s) & ((rows < r) | ((rows == r) & (chans < c))))
        if not beats.any():
            peaks.append((r, c))
    return sorted(peaks)


@pytest.mark.parametrize("polarity", ["neg", "pos", "both"])
@pytest.mark.parametrize("n_ch", [70, 150])  # several channel segments of the kernel, the last one partial
def test_peaks_match_the_rule_written_directly(polarity, n_ch):
    rng = np.random.default_rng(10)
    n = 4000
    spikes = spaced_spikes(rng, n, n_ch, 60, 20, (40.0, 150.0))
    x = np.round(make_recording(rng, n, n_ch, SR, spikes, noise_sd=8.0))
    x[::2] *= -1 if polarity == "both" else 1
    x = x.astype(np.int16) if polarity != "pos" else (-x).astype(np.int16)
    thr = rng.uniform(30.0, 45.0, n_ch)
    pos = linear_probe(n_ch)
    ev = stream(x, [997, 1500], pos, per_channel_thresholds=tuple(thr), polarity=polarity, refractory_s=0.0,
                radius_um=50.0)
    sweep = ThresholdConfig().samples(ThresholdConfig().sweep_s, SR)
    want = _brute_force_peaks(x, thr, polarity, pos, 50.0, sweep)
    assert len(want) > 20
    assert list(zip(ev.peak_index.tolist(), ev.channel.tolist(), strict=True)) == want


def test_noise_estimate_and_dead_channel():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 12.0, (30_000, 4)).astype(np.float32)
    x[:, 2] = 0.0  # flat channel
    det = StreamingDetector(SR, 4, None, ThresholdConfig())
    det.process(x)
    det.flush()
    sigma = det.sigma
    np.testing.assert_allclose(sigma[[0, 1, 3]], 12.0, rtol=0.08)
    assert det.dead_channels.tolist() == [2]
    ev = detect(x, SR)
    assert 2 not in ev.channel.tolist()
    np.testing.assert_allclose(ev.sigma, sigma[ev.channel], rtol=0.2)
    np.testing.assert_allclose(np.abs(ev.threshold), 4.5 * ev.sigma, rtol=0.05)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int8, np.uint8])
def test_mad_sigma_of_small_integers_equals_the_float32_computation(dtype):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(8)
    for n in (1, 2, 7, 1001):
        x = rng.integers(info.min, info.max, (n, 5), endpoint=True).astype(dtype)
        x[:, 0] = info.max  # flat channel
        v = x.astype(np.float32)
        k = n // 2
        med = np.sort(v, axis=0)[k]
        mad = np.sort(np.abs(v - med), axis=0)[k]
        got_med, got_sigma = mad_sigma(x)
        np.testing.assert_array_equal(got_med, med.astype(np.float64))
        np.testing.assert_array_equal(got_sigma, mad.astype(np.float64) * (1.0 / 0.6745))


def test_amplitude_is_the_signal_at_the_peak():
    rng = np.random.default_rng(9)
    x = np.round(make_recording(rng, 20_000, 3, SR, [(5000, 1, 150.0), (15000, 2, 120.0)], noise_sd=5.0)
                 ).astype(np.int16)
    ev = stream(x, [333, 7000])
    assert len(ev) >= 2
    np.testing.assert_array_equal(ev.amplitude, x[ev.peak_index, ev.channel].astype(np.float64))


def test_auto_threshold_waits_for_first_noise_window_and_handles_short_input():
    x = make_recording(np.random.default_rng(6), 3000, 1, SR, [(2000, 0, 300.0)], noise_sd=5.0)
    det = StreamingDetector(SR, 1, None, ThresholdConfig(noise_window_s=0.5))
    assert len(det.process(x)) == 0 and not det.ready  # 0.3 s < noise window
    ev = det.flush()
    assert ev.peak_index.tolist() == [2000]
    assert len(detect(np.zeros((0, 3)), SR)) == 0


def test_offset_is_removed_by_median_or_filter():
    rng = np.random.default_rng(7)
    x = make_recording(rng, 20_000, 2, SR, [(5000, 1, 150.0), (15000, 1, 150.0)], noise_sd=5.0) + 1000.0
    pos = linear_probe(2)
    assert detect(x, SR, pos, auto_k_sigma=6.0).peak_index.tolist() == [5000, 15000]
    filt = detect(x, SR, pos, auto_k_sigma=6.0, filter_band=(300.0, 3000.0))
    assert np.abs(filt.peak_index - np.array([5000, 15000])).max() <= 3


def test_reconfigure_hot_and_cold_settings():
    rng = np.random.default_rng(8)
    x = make_recording(rng, 20_000, 1, SR, [(6000, 0, 60.0), (16000, 0, 60.0)], noise_sd=10.0)
    det = StreamingDetector(SR, 1, None, ThresholdConfig(auto_k_sigma=4.5))
    got = det.process(x[:10_000]).peak_index.tolist()
    det.reconfigure(replace(det.config, auto_k_sigma=20.0))
    got += det.process(x[10_000:]).peak_index.tolist() + det.flush().peak_index.tolist()
    assert 6000 in got and 16000 not in got
    with pytest.raises(ValueError, match="new detector"):
        det.reconfigure(replace(det.config, window_pre_s=0.001))


@pytest.mark.parametrize("bad", [
    dict(polarity="up"), dict(auto_k_sigma=0), dict(refractory_s=-1), dict(per_channel_thresholds=(1.0, -2.0)),
    dict(filter_band=(3000.0, 300.0)), dict(noise_window_s=5, noise_refresh_s=1), dict(noise_stride=0),
])
def test_invalid_settings_are_rejected_clearly(bad):
    with pytest.raises(ValueError):
        ThresholdConfig(**bad)


def test_invalid_input_is_rejected_clearly():
    det = StreamingDetector(SR, 3)
    with pytest.raises(ValueError, match="shape"):
        det.process(np.zeros((10, 2)))
    with pytest.raises(ValueError, match="dtype"):
        det.process(np.zeros((10, 3), dtype=object))
    with pytest.raises(ValueError, match="per_channel_thresholds"):
        StreamingDetector(SR, 3, None, ThresholdConfig(per_channel_thresholds=(1.0, 2.0)))
    with pytest.raises(ValueError, match="channel_positions"):
        StreamingDetector(SR, 3, np.zeros((2, 2)))
    det.process(np.zeros((10, 3), np.int16))
    with pytest.raises(ValueError, match="differs"):
        det.process(np.zeros((10, 3), np.float64))
    with pytest.raises(ValueError, match="Nyquist"):
        StreamingDetector(SR, 1, None, ThresholdConfig(filter_band=(6000.0, 9000.0)))
