"""bombcell 0.94's quality classification (``get_quality_unit_type``) written down as data.

Each :class:`Rule` is one threshold test: its class block, the metric column it reads, the
comparison, the parameter holding the threshold and the switches that enable it. The table
order is bombcell's rule order and is also the tie-break order for the main reason.

Semantics (checked against bombcell's code, see ``docs/classification_reason.md``):

* comparisons are strict, so a value exactly at its threshold passes;
* a NaN metric never fails a rule, except ``nPeaks`` where NaN means NOISE;
* ``nSpikes == 0`` means an empty unit, labelled ``''`` whatever else it fails;
* non-somatic is ``(A & B & C & D) | E`` and overrides GOOD and MUA (never NOISE);
* the raw-amplitude rules apply only to units whose ``rawAmplitude`` is not NaN;
* with ``keepUncertainRPVUnits`` a unit whose ``RPV_status`` is 0 passes the RPV rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

NOISE, NON_SOMA, MUA = "NOISE", "NON-SOMA", "MUA"
BLOCKS = (NOISE, NON_SOMA, MUA)


@dataclass(frozen=True)
class Rule:
    """One classification test. ``op`` is ``'>'``, ``'<'`` or ``'isnan'``."""

    block: str
    metric: str
    op: str
    param: str | None = None
    #: all (switch, required truth value) pairs must hold for the rule to be active
    switches: tuple[tuple[str, bool], ...] = ()
    #: non-somatic AND-group member ('A'..'D'); ``None`` for independent rules
    group: str | None = None
    #: the rule is skipped for units where this metric is NaN
    gate: str | None = None
    #: keep units with ``RPV_status == 0`` when ``keepUncertainRPVUnits`` is set
    uncertain_rpv_exempt: bool = False

    @property
    def name(self) -> str:
        """Reason token, e.g. ``fractionRPVs_estimatedTauR>maxRPVviolations``."""
        if self.op == "isnan":
            return f"{self.metric} is NaN"
        return f"{self.metric}{self.op}{self.param}"

    @property
    def key(self) -> str:
        """Short identifier (the parameter name, unique per rule) usable in phy filters."""
        return self.param or f"{self.metric}NaN"


_SPATIAL_LIN = (("computeSpatialDecay", True), ("spDecayLinFit", True))
_SPATIAL_EXP = (("computeSpatialDecay", True), ("spDecayLinFit", False))

RULES: tuple[Rule, ...] = (
    Rule(NOISE, "nPeaks", "isnan"),
    Rule(NOISE, "nPeaks", ">", "maxNPeaks"),
    Rule(NOISE, "nTroughs", ">", "maxNTroughs"),
    Rule(NOISE, "waveformDuration_peakTrough", "<", "minWvDuration"),
    Rule(NOISE, "waveformDuration_peakTrough", ">", "maxWvDuration"),
    Rule(NOISE, "waveformBaselineFlatness", ">", "maxWvBaselineFraction"),
    Rule(NOISE, "scndPeakToTroughRatio", ">", "maxScndPeakToTroughRatio_noise"),
    Rule(NOISE, "spatialDecaySlope", "<", "minSpatialDecaySlope", _SPATIAL_LIN),
    Rule(NOISE, "spatialDecaySlope", "<", "minSpatialDecaySlopeExp", _SPATIAL_EXP),
    Rule(NOISE, "spatialDecaySlope", ">", "maxSpatialDecaySlopeExp", _SPATIAL_EXP),
    Rule(NON_SOMA, "troughToPeak2Ratio", "<", "minTroughToPeak2Ratio_nonSomatic", group="A"),
    Rule(NON_SOMA, "mainPeak_before_width", "<", "minWidthFirstPeak_nonSomatic", group="B"),
    Rule(NON_SOMA, "mainTrough_width", "<", "minWidthMainTrough_nonSomatic", group="C"),
    Rule(NON_SOMA, "peak1ToPeak2Ratio", ">", "maxPeak1ToPeak2Ratio_nonSomatic", group="D"),
    Rule(NON_SOMA, "mainPeakToTroughRatio", ">", "maxMainPeakToTroughRatio_nonSomatic"),
    Rule(MUA, "percentageSpikesMissing_gaussian", ">", "maxPercSpikesMissing"),
    Rule(MUA, "nSpikes", "<", "minNumSpikes"),
    Rule(MUA, "fractionRPVs_estimatedTauR", ">", "maxRPVviolations", uncertain_rpv_exempt=True),
    Rule(MUA, "presenceRatio", "<", "minPresenceRatio"),
    Rule(MUA, "rawAmplitude", "<", "minAmplitude", (("extractRaw", True),), gate="rawAmplitude"),
    Rule(MUA, "signalToNoiseRatio", "<", "minSNR", (("extractRaw", True),), gate="rawAmplitude"),
    Rule(MUA, "maxDriftEstimate", ">", "maxDrift", (("computeDrift", True),)),
    Rule(MUA, "isolationDistance", "<", "isoDmin", (("computeDistanceMetrics", True),)),
    Rule(MUA, "Lratio", ">", "lratioMax", (("computeDistanceMetrics", True),)),
)

#: the switches that turn rules or labels on and off
SWITCHES = (
    "computeSpatialDecay", "spDecayLinFit", "extractRaw", "computeDrift",
    "computeDistanceMetrics", "splitGoodAndMua_NonSomatic", "keepUncertainRPVUnits",
)

# Values bombcell 0.94 (check_parameter_fields) gives to parameters an older run did not
# save: they reproduce the behaviour from before each parameter existed. Facts, not defaults.
BACKCOMPAT_VALUES: dict[str, Any] = {
    "extractRaw": True, "computeSpatialDecay": True, "spDecayLinFit": True,
    "computeDrift": False, "computeDistanceMetrics": False,
    "splitGoodAndMua_NonSomatic": False, "keepUncertainRPVUnits": False,
    "minSpatialDecaySlopeExp": 0.01, "maxSpatialDecaySlopeExp": 0.1,
    "maxScndPeakToTroughRatio_noise": 0.8, "maxMainPeakToTroughRatio_nonSomatic": 0.8,
    # the AND group is inert as a whole when all four are missing
    "minTroughToPeak2Ratio_nonSomatic": 0, "minWidthFirstPeak_nonSomatic": 0,
    "minWidthMainTrough_nonSomatic": 0, "maxPeak1ToPeak2Ratio_nonSomatic": math.inf,
}
AND_GROUP_PARAMS = tuple(r.param for r in RULES if r.group)

#: metric values of a clean unit that passes every rule at bombcell's default thresholds
#: (the starting point of the synthetic tables in the tests and the benchmark)
CLEAN_UNIT: MappingProxyType[str, float] = MappingProxyType(dict(
    nPeaks=1, nTroughs=1, waveformDuration_peakTrough=500, waveformBaselineFlatness=0.1,
    scndPeakToTroughRatio=0.2, spatialDecaySlope=0.05, troughToPeak2Ratio=10,
    mainPeak_before_width=10, mainTrough_width=10, peak1ToPeak2Ratio=1,
    mainPeakToTroughRatio=0.3, percentageSpikesMissing_gaussian=5, nSpikes=2000,
    fractionRPVs_estimatedTauR=0.01, presenceRatio=0.95, rawAmplitude=80, signalToNoiseRatio=10,
    maxDriftEstimate=10, isolationDistance=50, Lratio=0.05))


def as_bool(value: Any) -> bool:
    """Truth value of a saved switch (bools, 0/1, or 'True'/'False' strings from a CSV)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def complete_params(param: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """Fill parameters missing from an older (or partial) saved param like bombcell 0.94 does.

    Returns ``(param, notes)``. Keys without a back-compatibility value stay missing; the rules
    reading them are then reported as not evaluated instead of raising ``KeyError``.
    """
    param = dict(param or {})
    notes: list[str] = []
    fill = dict(BACKCOMPAT_VALUES)
    present = [k in param for k in AND_GROUP_PARAMS]
    if any(present) and not all(present):
        # part of the AND group is configured: bombcell fills the rest with current defaults
        scale = 1.0
        width, std = param.get("spikeWidth"), param.get("standardSpikeWidth")
        try:
            if width and std and math.isfinite(float(width)) and float(std) > 0:
                scale = float(width) / float(std)
        except (TypeError, ValueError):
            pass
        fill.update({
            "minTroughToPeak2Ratio_nonSomatic": 5,
            "minWidthFirstPeak_nonSomatic": max(2, round(4 * scale)),
            "minWidthMainTrough_nonSomatic": max(3, round(5 * scale)),
            "maxPeak1ToPeak2Ratio_nonSomatic": 3,
        })
    filled = sorted(k for k in fill if k not in param)
    for key in filled:
        param[key] = fill[key]
    if filled:
        notes.append("parameters missing from the saved param were filled with bombcell's "
                     "back-compatibility values: " + ", ".join(filled))
    return param, notes


def rule_is_active(rule: Rule, param: dict[str, Any]) -> bool:
    """Whether the rule's switches enable it in this (completed) param."""
    return all(as_bool(param.get(k, False)) == want for k, want in rule.switches)
