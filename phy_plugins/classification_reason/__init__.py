"""Why bombcell labelled each unit: rules engine, reason strings, export, audit report, phy plugin.

The plugin class lives in :mod:`.plugin` (imported lazily: it needs phy/Qt).
"""

from .engine import Evaluation, evaluate
from .rules import RULES, Rule

__all__ = ["Evaluation", "RULES", "Rule", "evaluate"]
