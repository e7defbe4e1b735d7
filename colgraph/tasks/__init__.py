"""Tasks: what goes into the input area and what is read out of the output area."""
from .vision import VisionClassifier, retinotopic_order

__all__ = ["VisionClassifier", "retinotopic_order"]
