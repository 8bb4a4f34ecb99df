"""The analytical loop-nest model (Timeloop-compatible semantics by default)."""

from dse.model.evaluate import Evaluation, LevelTensorStats, evaluate

__all__ = ["Evaluation", "LevelTensorStats", "evaluate"]
