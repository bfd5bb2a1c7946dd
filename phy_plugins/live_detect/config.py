"""Detection settings (the seed's ``ThresholdConfig``, extended with the streaming knobs)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

POLARITIES = ("neg", "pos", "both")
#: causal band-pass (Hz) applied to raw (not high-pass filtered) data
FILTER_BAND = (300.0, 6000.0)


@dataclass(frozen=True)
class ThresholdConfig:
    """Immutable detector settings; invalid values raise ``ValueError`` at construction.

    Thresholds are absolute per channel (``per_channel_thresholds``, signal units, magnitude)
    or automatic: ``auto_k_sigma`` x sigma with sigma = MAD / 0.6745, estimated on every
    ``noise_stride``-th sample of the first ``noise_window_s`` of each ``noise_refresh_s`` block.
    """

    per_channel_thresholds: tuple[float, ...] | None = None
    polarity: str = "neg"
    auto_k_sigma: float = 4.5
    refractory_s: float = 0.003
    window_pre_s: float = 0.002
    window_post_s: float = 0.004
    #: half-width of the peak search: an event is the largest |x|/threshold within +- sweep
    sweep_s: float = 0.0005
    #: spatial exclusion radius (um); 0 disables cross-channel de-duplication
    radius_um: float = 50.0
    #: causal band-pass (low, high) in Hz, or None for already filtered data
    filter_band: tuple[float, float] | None = None
    filter_order: int = 3
    noise_window_s: float = 0.5
    noise_refresh_s: float = 10.0
    noise_stride: int = 10

    def __post_init__(self) -> None:
        if self.polarity not in POLARITIES:
            raise ValueError(f"polarity must be one of {POLARITIES}, got {self.polarity!r}")
        if self.per_channel_thresholds is not None:
            thr = tuple(float(t) for t in self.per_channel_thresholds)
            if not thr or any(not math.isfinite(t) or t <= 0 for t in thr):
                raise ValueError("per_channel_thresholds must be finite positive magnitudes")
            object.__setattr__(self, "per_channel_thresholds", thr)
        _positive("auto_k_sigma", self.auto_k_sigma)
        for name in ("refractory_s", "window_pre_s", "window_post_s", "sweep_s", "radius_um"):
            _non_negative(name, getattr(self, name))
        _positive("noise_window_s", self.noise_window_s)
        _positive("noise_refresh_s", self.noise_refresh_s)
        if self.noise_refresh_s < self.noise_window_s:
            raise ValueError("noise_refresh_s must be >= noise_window_s")
        if int(self.noise_stride) != self.noise_stride or self.noise_stride < 1:
            raise ValueError("noise_stride must be a positive integer")
        if self.filter_band is not None:
            lo, hi = (float(v) for v in self.filter_band)
            if not (0 < lo < hi):
                raise ValueError(f"filter_band must be (low, high) with 0 < low < high, got {self.filter_band}")
            object.__setattr__(self, "filter_band", (lo, hi))
        if int(self.filter_order) != self.filter_order or not 1 <= self.filter_order <= 8:
            raise ValueError("filter_order must be an integer in 1..8")

    def samples(self, seconds: float, sample_rate: float) -> int:
        """Convert a duration to a whole number of samples (rounded)."""
        return int(round(seconds * sample_rate))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThresholdConfig:
        """Build from a dict, ignoring unknown keys (settings files from other versions)."""
        names = {f.name for f in fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
        return cls(**kw)


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
