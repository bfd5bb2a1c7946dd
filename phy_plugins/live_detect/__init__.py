"""Live threshold spike detection over the raw traces, in a phy dock view.

The engine (config, detector, noise, metrics, settings, sources, session, matching) is pure
Python/numpy/numba; only ``view`` and ``plugin`` import Qt.
"""

from .config import ThresholdConfig
from .detector import EventBatch, StreamingDetector
from .events import AnalysisEvent, to_events
from .offline import detect
from .settings import SettingsStore

__all__ = ["AnalysisEvent", "EventBatch", "SettingsStore", "StreamingDetector", "ThresholdConfig", "detect",
           "to_events"]
