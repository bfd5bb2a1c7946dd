"""Per-spike amplitudes from the filtered raw recording, as SpikeInterface's ``spike_amplitudes`` defines them.

A spike's amplitude is the filtered trace (microvolts) on its cluster's main channel at the spike
time plus the cluster's peak shift. Main channel and shift come from the cluster's mean filtered
waveform (largest absolute value). The file is read once, in chunks with margins, and only the
main channels of the spikes in a chunk are filtered.
"""

from __future__ import annotations

import math

import numpy as np

from phy_plugins.unitrefine.metrics_amplitude import _highpass, raw_template

CHUNK_SAMPLES = 1 << 17
MARGIN_SAMPLES = 3000


def peak_reference(template_uv: np.ndarray, n_before: int) -> tuple[int, int]:
    """(main channel, peak shift in samples) of a mean waveform ``(n_samples, n_channels)`` aligned at ``n_before``."""
    absolute = np.abs(template_uv)
    channel = int(np.argmax(absolute.max(axis=0)))
    return channel, int(np.argmax(absolute[:, channel])) - n_before


def amplitudes_at(traces: np.ndarray, samples: np.ndarray, channels: np.ndarray, gain_uv: float, fs: float, *,
                  highpass: bool, chunk_samples: int = CHUNK_SAMPLES, margin: int = MARGIN_SAMPLES) -> np.ndarray:
    """Filtered trace x ``gain_uv`` at ``(samples[i], channels[i])``; samples are clipped to the file."""
    n = traces.shape[0]
    samples = np.clip(np.asarray(samples, np.int64), 0, n - 1)
    channels = np.asarray(channels, np.int64)
    order = np.argsort(samples, kind="stable")
    s_sorted, c_sorted = samples[order], channels[order]
    out = np.empty(len(samples), np.float32)
    starts = np.arange(0, n, chunk_samples)
    bounds = np.searchsorted(s_sorted, np.append(starts, n), side="left")
    pad = margin if highpass else 0
    for a, i0, i1 in zip(starts, bounds[:-1], bounds[1:]):
        if i1 == i0:
            continue
        chans = np.unique(c_sorted[i0:i1])
        lo, hi = max(a - pad, 0), min(a + chunk_samples + pad, n)
        block = np.asarray(traces[lo:hi][:, chans], np.float32)
        if highpass:
            block = _highpass(block, fs)
        col = np.searchsorted(chans, c_sorted[i0:i1])
        out[order[i0:i1]] = block[s_sorted[i0:i1] - lo, col] * gain_uv
    return out


def cluster_amplitudes(traces: np.ndarray, spike_times: np.ndarray, spikes: dict[int, np.ndarray], gain_uv: float,
                       fs: float, *, highpass: bool, **chunking) -> dict[int, np.ndarray]:
    """Raw-trace amplitudes (microvolts) of the spikes of each cluster (``spikes``: cluster -> spike indices).

    Clusters without a usable mean waveform (all spikes at the file's edges) get NaN amplitudes.
    """
    n_before, n_after = int(1.0e-3 * fs), int(2.0e-3 * fs)
    samples, channels, owners = [], [], []
    out = {}
    for c, idx in spikes.items():
        st = np.asarray(spike_times[idx], np.int64)
        w = raw_template(traces, st, gain_uv, fs, highpass=highpass, n_before=n_before, n_after=n_after)
        if w is None:
            out[c] = np.full(len(idx), math.nan)
            continue
        channel, shift = peak_reference(w, n_before)
        samples.append(st + shift)
        channels.append(np.full(len(st), channel))
        owners.append(c)
    if owners:
        amps = amplitudes_at(traces, np.concatenate(samples), np.concatenate(channels), gain_uv, fs,
                             highpass=highpass, **chunking)
        ends = np.cumsum([len(s) for s in samples])
        for c, part in zip(owners, np.split(amps, ends[:-1])):
            out[c] = part.astype(float)
    return out
