"""Generate a Kilosort-4-style folder with known ground truth.

Every unit is built for one purpose (clean, refractory-violating, noise-like, axonal-like,
split across two clusters, or similar to a distinct neighbour) and the purpose is recorded in
``ground_truth.json`` so tests and benchmarks can score the plugins against it. The output is
deterministic for a given ``(preset, seed)``.

Units: templates are in microvolts per unit amplitude (``whitening_mat`` is the identity), the
raw file is int16 at :data:`GAIN_UV` microvolts per bit with white noise of
:data:`NOISE_UV` microvolts.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_write_text
from .kilosort import write_params_py

GAIN_UV = 0.195
NOISE_UV = 10.0
N_SAMPLES_TEMPLATE = 61
TROUGH_SAMPLE = 20
GROUND_TRUTH_FILE = "ground_truth.json"
RAW_FILE = "recording.dat"


@dataclass(frozen=True)
class Preset:
    """Size of a generated dataset."""

    n_channels: int
    duration_s: float
    n_columns: int
    row_pitch_um: float
    column_pitch_um: float
    n_good: int  # clean single units besides the designed MUA/noise/axonal/split/similar ones
    sample_rate: float = 30000.0


PRESETS = {
    "small": Preset(n_channels=32, duration_s=60.0, n_columns=2, row_pitch_um=20.0,
                    column_pitch_um=32.0, n_good=6),
    "large": Preset(n_channels=384, duration_s=60.0, n_columns=4, row_pitch_um=20.0,
                    column_pitch_um=16.0, n_good=90),
}


@dataclass
class _Neuron:
    kind: str
    waveform: np.ndarray  # (n_samples,) time course, trough/peak scaled to 1
    position: np.ndarray  # (x, y) in um
    amplitude_uv: float
    times: np.ndarray  # spike samples
    footprint_um: float = 25.0  # exponential decay length
    flat: bool = False  # same amplitude on every channel (artefact)
    amp_sd: float = 0.12  # relative per-spike amplitude jitter
    amp_floor: float | None = None  # drop spikes below this relative amplitude
    designed_rule: str | None = None
    expected_label: str = "GOOD"
    clusters: list[int] = field(default_factory=list)


def probe_geometry(n_channels: int, n_columns: int, row_pitch: float, col_pitch: float) -> np.ndarray:
    """Channel (x, y) positions in um; with 4 columns a Neuropixels-1.0-like checkerboard."""
    idx = np.arange(n_channels)
    row, col = idx // 2, idx % 2
    if n_columns == 4:
        x = np.where(row % 2 == 0, np.array([43.0, 11.0])[col], np.array([59.0, 27.0])[col])
    else:
        x = col * col_pitch
    return np.c_[x, row * row_pitch].astype(np.float64)


def _gauss(t: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - mu) / sd) ** 2)


def somatic_waveform(trough_sd: float = 2.0, peak_ratio: float = 0.35, peak_delay: float = 9.0) -> np.ndarray:
    """Negative trough at :data:`TROUGH_SAMPLE` then a slower positive repolarisation peak."""
    t = np.arange(N_SAMPLES_TEMPLATE, dtype=float)
    w = -_gauss(t, TROUGH_SAMPLE, trough_sd) + peak_ratio * _gauss(t, TROUGH_SAMPLE + peak_delay, 2.2 * trough_sd)
    return w / np.abs(w).max()


def axonal_waveform() -> np.ndarray:
    """Axon-like: a large, narrow positive peak *before* a narrow trough."""
    t = np.arange(N_SAMPLES_TEMPLATE, dtype=float)
    w = 1.0 * _gauss(t, TROUGH_SAMPLE - 4, 1.3) - 0.75 * _gauss(t, TROUGH_SAMPLE, 1.3)
    return w / np.abs(w).max()


def oscillatory_waveform() -> np.ndarray:
    """Noise-like: several peaks and troughs of similar size (e.g. line or movement artefact)."""
    t = np.arange(N_SAMPLES_TEMPLATE, dtype=float)
    w = -np.cos(2 * np.pi * (t - TROUGH_SAMPLE) / 9.0) * _gauss(t, TROUGH_SAMPLE + 6, 14.0)
    return w / np.abs(w).max()


def poisson_train(rng: np.random.Generator, rate_hz: float, duration_s: float, fs: float,
                  refractory_s: float = 0.0025, regularity: float = 2.0) -> np.ndarray:
    """Spike samples of a renewal process: absolute refractory period + gamma-distributed ISI.

    ``regularity`` is the gamma shape (1 = Poisson); 2 adds a relative refractory period.
    """
    n_guess = int(rate_hz * duration_s * 1.5) + 20
    isi = refractory_s + rng.gamma(regularity, 1.0 / (rate_hz * regularity), n_guess)
    t = np.cumsum(isi)
    t = t[t < duration_s - 0.01]
    return np.unique((t * fs).astype(np.int64))


def _footprint(n: _Neuron, positions: np.ndarray) -> np.ndarray:
    if n.flat:
        return np.ones(len(positions))
    d = np.linalg.norm(positions - n.position, axis=1)
    return np.exp(-d / n.footprint_um)


def _design_neurons(rng: np.random.Generator, p: Preset, positions: np.ndarray) -> list[_Neuron]:
    """The designed population; see the module docstring."""
    fs, dur = p.sample_rate, p.duration_s
    y_max = positions[:, 1].max()
    x_mid = positions[:, 0].mean()
    neurons: list[_Neuron] = []

    def pos(y: float | None = None) -> np.ndarray:
        y = rng.uniform(30, y_max - 30) if y is None else y
        return np.array([x_mid + rng.uniform(-12, 12), y])

    def train(rate: float) -> np.ndarray:
        return poisson_train(rng, rate, dur, fs)

    # clean single units (bombcell GOOD)
    for _ in range(p.n_good):
        neurons.append(_Neuron("good", somatic_waveform(rng.uniform(1.6, 2.6), rng.uniform(0.25, 0.45)),
                               pos(), rng.uniform(90, 180), train(rng.uniform(8, 16))))
    # MUA: refractory violations (an independent contaminating train under the same template)
    for _ in range(2):
        base, contam = train(9.0), poisson_train(rng, 4.0, dur, fs, refractory_s=0.0, regularity=1.0)
        neurons.append(_Neuron("mua", somatic_waveform(rng.uniform(1.8, 2.4)), pos(), rng.uniform(90, 150),
                               np.union1d(base, contam), designed_rule="fractionRPVs_estimatedTauR>maxRPVviolations",
                               expected_label="MUA"))
    # MUA: too few spikes (still above bombcell's 50-spike waveform floor)
    rate_low = 150.0 / dur
    neurons.append(_Neuron("mua", somatic_waveform(2.0), pos(), 130.0, train(rate_low),
                           designed_rule="nSpikes<minNumSpikes", expected_label="MUA"))
    # MUA: amplitude distribution cut by the detection threshold (many spikes missing)
    neurons.append(_Neuron("mua", somatic_waveform(2.2), pos(), 120.0, train(14.0), amp_sd=0.3, amp_floor=1.0,
                           designed_rule="percentageSpikesMissing_gaussian>maxPercSpikesMissing",
                           expected_label="MUA"))
    # MUA: too small in the raw data
    neurons.append(_Neuron("mua", somatic_waveform(2.0), pos(), 22.0, train(10.0),
                           designed_rule="rawAmplitude<minAmplitude", expected_label="MUA"))
    # NOISE: oscillatory waveform with too many peaks
    neurons.append(_Neuron("noise", oscillatory_waveform(), pos(), 120.0, train(8.0),
                           designed_rule="nPeaks>maxNPeaks", expected_label="NOISE"))
    # NOISE: the same on every channel (no spatial decay)
    neurons.append(_Neuron("noise", somatic_waveform(2.0), pos(), 80.0, train(8.0), flat=True,
                           designed_rule="spatialDecaySlope<minSpatialDecaySlopeExp", expected_label="NOISE"))
    # NON-SOMA: axon-like waveform
    for _ in range(2):
        neurons.append(_Neuron("non_somatic", axonal_waveform(), pos(), rng.uniform(90, 140), train(10.0),
                               footprint_um=18.0,
                               designed_rule="mainPeakToTroughRatio>maxMainPeakToTroughRatio_nonSomatic",
                               expected_label="NON-SOMA"))
    # true merges: one neuron split into two clusters
    for _ in range(3):
        neurons.append(_Neuron("split", somatic_waveform(rng.uniform(1.8, 2.4), rng.uniform(0.25, 0.4)), pos(),
                               rng.uniform(100, 160), train(rng.uniform(20, 26))))
    # true non-merges: two distinct neurons 30 um apart with similar waveforms
    for _ in range(3):
        y = rng.uniform(40, y_max - 70)
        shape = (rng.uniform(1.8, 2.4), rng.uniform(0.25, 0.4))
        for dy in (0.0, 30.0):
            neurons.append(_Neuron("similar", somatic_waveform(shape[0] * rng.uniform(0.9, 1.1), shape[1]),
                                   pos(y + dy), rng.uniform(100, 160), train(rng.uniform(9, 14))))
    return neurons


def _cluster_templates(n: _Neuron, positions: np.ndarray) -> list[np.ndarray]:
    """One template per cluster of the neuron: (n_samples, n_channels) in uV per unit amplitude."""
    base = n.waveform[:, None] * _footprint(n, positions)[None, :]
    if n.kind != "split":
        return [base]
    # the sorter's second template differs slightly (small shift in space and shape)
    shifted = np.roll(n.waveform, 1)[:, None] * _footprint(
        _Neuron(n.kind, n.waveform, n.position + [0, 6.0], 1, n.times), positions)[None, :]
    return [base, 0.8 * base + 0.2 * shifted]


def generate_dataset(out_dir: str | Path, preset: str = "small", seed: int = 0, overwrite: bool = False,
                     duration_s: float | None = None,
                     progress: Callable[[float, str], None] | None = None) -> Path:
    """Write a complete Kilosort-4-style folder with ``ground_truth.json``; return its path.

    An existing dataset (``params.py`` and ``ground_truth.json`` present) is kept unless
    ``overwrite``. ``progress(fraction, text)`` is called during the long raw-file write.
    """
    out = Path(out_dir)
    if (out / "params.py").exists() and (out / GROUND_TRUTH_FILE).exists() and not overwrite:
        return out
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    p = PRESETS[preset]
    if duration_s is not None:
        p = Preset(**{**p.__dict__, "duration_s": float(duration_s)})
    if overwrite and out.exists():
        for f in out.iterdir():
            if f.is_dir() and f.name in ("bombcell", ".phy"):
                shutil.rmtree(f)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    fs = p.sample_rate
    positions = probe_geometry(p.n_channels, p.n_columns, p.row_pitch_um, p.column_pitch_um)
    neurons = _design_neurons(rng, p, positions)

    # clusters: one per neuron, two for split neurons; ids shuffled so they reveal nothing
    cluster_neuron: list[int] = []
    templates: list[np.ndarray] = []
    for i, n in enumerate(neurons):
        for tpl in _cluster_templates(n, positions):
            cluster_neuron.append(i)
            templates.append(tpl)
    order = rng.permutation(len(templates))  # order[new_id] = old index
    new_id_of = np.empty(len(order), dtype=np.int64)
    new_id_of[order] = np.arange(len(order))
    tpl_arr = np.stack([templates[o] for o in order]).astype(np.float32)
    for old, nid in enumerate(new_id_of):
        neurons[cluster_neuron[old]].clusters.append(int(nid))

    # spikes
    times, clus, amps = [], [], []
    for n in neurons:
        a = 1.0 + n.amp_sd * rng.standard_normal(len(n.times))
        t = n.times
        if n.amp_floor is not None:
            keep = a > n.amp_floor
            t, a = t[keep], a[keep]
        a = np.clip(a, 0.2, None)
        if len(n.clusters) == 1:
            c = np.full(len(t), n.clusters[0])
        else:  # the sorter split this neuron at random between its two clusters
            c = np.asarray(n.clusters)[rng.integers(0, 2, len(t))]
        times.append(t)
        clus.append(c)
        amps.append(a * n.amplitude_uv)
    spike_times = np.concatenate(times)
    spike_clusters = np.concatenate(clus).astype(np.int32)
    amplitudes = np.concatenate(amps)
    so = np.argsort(spike_times, kind="stable")
    spike_times, spike_clusters, amplitudes = spike_times[so], spike_clusters[so], amplitudes[so]

    _write_raw(out / RAW_FILE, rng, spike_times, spike_clusters, amplitudes, tpl_arr, p, progress)
    _write_sorting(out, rng, spike_times, spike_clusters, amplitudes, tpl_arr, positions)
    write_params_py(out, dat_path=RAW_FILE, n_channels_dat=p.n_channels, sample_rate=fs,
                    hp_filtered=True, overwrite=True)
    _write_ground_truth(out, neurons, tpl_arr, seed, preset, p, spike_clusters)
    return out


def _write_raw(path: Path, rng: np.random.Generator, spike_times: np.ndarray, spike_clusters: np.ndarray,
               amplitudes: np.ndarray, templates: np.ndarray, p: Preset,
               progress: Callable[[float, str], None] | None) -> None:
    n_total = int(p.duration_s * p.sample_rate)
    nc, ns = p.n_channels, N_SAMPLES_TEMPLATE
    chunk = max(1000, int(4e6 // nc))
    offsets = np.arange(ns) - TROUGH_SAMPLE
    # each template is added on its strongest channels only (all of them on small probes)
    k = min(nc, 64)
    local_ch = np.argsort(-np.abs(templates).max(axis=1), axis=1)[:, :k]  # (n_templates, k)
    local_tpl = np.take_along_axis(templates, local_ch[:, None, :], axis=2)  # (n_templates, ns, k)
    tmp = path.with_suffix(".dat.part")
    with open(tmp, "wb") as f:
        for a in range(0, n_total, chunk):
            b = min(n_total, a + chunk)
            block = rng.standard_normal((b - a, nc), dtype=np.float32) * np.float32(NOISE_UV)
            lo = np.searchsorted(spike_times, a - (ns - TROUGH_SAMPLE))
            hi = np.searchsorted(spike_times, b + TROUGH_SAMPLE)
            if hi > lo:
                tid = spike_clusters[lo:hi]
                rows = spike_times[lo:hi, None, None] + offsets[None, :, None] - a  # (n, ns, 1)
                flat = rows * nc + local_ch[tid][:, None, :]  # (n, ns, k)
                vals = local_tpl[tid] * amplitudes[lo:hi, None, None].astype(np.float32)
                ok = (rows >= 0) & (rows < b - a)
                ok = np.broadcast_to(ok, flat.shape)
                block += np.bincount(flat[ok], weights=vals[ok], minlength=block.size).reshape(block.shape)
            np.round(block / np.float32(GAIN_UV)).clip(-32768, 32767).astype(np.int16).tofile(f)
            if progress is not None:
                progress(b / n_total, "writing raw data")
    tmp.replace(path)


def _save(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".part.npy")
    np.save(tmp, arr)
    tmp.replace(path)


def _write_sorting(out: Path, rng: np.random.Generator, spike_times: np.ndarray, spike_clusters: np.ndarray,
                   amplitudes: np.ndarray, templates: np.ndarray, positions: np.ndarray) -> None:
    """All the Kilosort outputs phy and bombcell read (no raw data)."""
    n_tpl, ns, nc = templates.shape
    n_spikes = len(spike_times)
    _save(out / "spike_times.npy", spike_times.astype(np.int64))
    _save(out / "spike_templates.npy", spike_clusters.astype(np.int32))
    _save(out / "spike_clusters.npy", spike_clusters.astype(np.int32))
    _save(out / "amplitudes.npy", amplitudes.astype(np.float64))
    _save(out / "templates.npy", templates)
    _save(out / "channel_map.npy", np.arange(nc, dtype=np.int32))
    _save(out / "channel_positions.npy", positions)
    _save(out / "whitening_mat.npy", np.eye(nc))
    _save(out / "whitening_mat_inv.npy", np.eye(nc))
    flat = templates.reshape(n_tpl, -1)
    norm = np.linalg.norm(flat, axis=1)
    sim = (flat @ flat.T) / np.maximum(norm[:, None] * norm[None, :], 1e-12)
    _save(out / "similar_templates.npy", sim.astype(np.float32))

    # PC features: 3 temporal PCs on each template's 8 strongest channels
    n_pc, n_loc = 3, min(8, nc)
    peak = np.abs(templates).max(axis=1)  # (n_tpl, nc)
    pc_ind = np.argsort(-peak, axis=1)[:, :n_loc].astype(np.uint32)
    waves = templates.transpose(0, 2, 1).reshape(-1, ns)
    waves = waves[np.abs(waves).max(axis=1) > 0.05]
    _, _, vt = np.linalg.svd(waves - waves.mean(0), full_matrices=False)
    pcs = vt[:n_pc]  # (n_pc, ns)
    proj = np.einsum("tsc,ks->tkc", templates, pcs)  # (n_tpl, n_pc, nc)
    loc = np.take_along_axis(proj, pc_ind[:, None, :].astype(np.int64), axis=2)  # (n_tpl, n_pc, n_loc)
    pcf = loc[spike_clusters] * amplitudes[:, None, None] + NOISE_UV * rng.standard_normal((n_spikes, n_pc, n_loc))
    _save(out / "pc_features.npy", pcf.astype(np.float32))
    _save(out / "pc_feature_ind.npy", pc_ind)

    # template features: projection on the 5 most similar templates
    n_tf = min(5, n_tpl)
    tf_ind = np.argsort(-sim, axis=1)[:, :n_tf].astype(np.uint32)
    tfeat = sim[spike_clusters[:, None], tf_ind[spike_clusters]] * amplitudes[:, None]
    tfeat = tfeat + 0.05 * amplitudes[:, None] * rng.standard_normal(tfeat.shape)
    _save(out / "template_features.npy", tfeat.astype(np.float32))
    _save(out / "template_feature_ind.npy", tf_ind)


def _write_ground_truth(out: Path, neurons: list[_Neuron], templates: np.ndarray, seed: int, preset: str,
                        p: Preset, spike_clusters: np.ndarray) -> None:
    counts = np.bincount(spike_clusters, minlength=len(templates))
    clusters: dict[str, dict] = {}
    merges, non_merges = [], []
    for i, n in enumerate(neurons):
        for cid in n.clusters:
            clusters[str(cid)] = {
                "neuron": i, "kind": n.kind, "expected_label": n.expected_label,
                "designed_rule": n.designed_rule, "n_spikes": int(counts[cid]),
                "amplitude_uv": round(float(n.amplitude_uv), 2),
                "position_um": [round(float(v), 2) for v in n.position],
            }
        if n.kind == "split":
            merges.append(sorted(n.clusters))
    similar = [n for n in neurons if n.kind == "similar"]
    for a, b in zip(similar[0::2], similar[1::2]):
        non_merges.append(sorted([a.clusters[0], b.clusters[0]]))
    gt = {
        "seed": seed, "preset": preset, "sample_rate": p.sample_rate, "n_channels": p.n_channels,
        "duration_s": p.duration_s, "gain_uv": GAIN_UV, "noise_uv": NOISE_UV,
        "clusters": dict(sorted(clusters.items(), key=lambda kv: int(kv[0]))),
        "true_merges": sorted(merges), "true_non_merges": sorted(non_merges),
    }
    atomic_write_text(out / GROUND_TRUTH_FILE, json.dumps(gt, indent=1) + "\n")


def load_ground_truth(ks_dir: str | Path) -> dict:
    """Read ``ground_truth.json`` of a generated dataset."""
    return json.loads((Path(ks_dir) / GROUND_TRUTH_FILE).read_text(encoding="utf-8"))
