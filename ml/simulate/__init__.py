"""Active-learning replay: a labeled dataset revealed round by round to compare acquisition strategies."""

from ml.simulate.config import GAL2017_LABELS_TO_ERROR, STRATEGY_NAMES, SimulationConfig

__all__ = ["GAL2017_LABELS_TO_ERROR", "STRATEGY_NAMES", "SimulationConfig"]
