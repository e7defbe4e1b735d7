"""colgraph: the Columnformer as a graph neural network.

A sheet of untied, spatially embedded columns applied recurrently, communicating by sparse
graph attention over the edges of a geometry.
"""
from .geometry import Geometry
from .model import Columnformer, ColumnformerConfig, ColumnformerOutput, Sheet

__version__ = "0.1.0"

__all__ = ["Columnformer", "ColumnformerConfig", "ColumnformerOutput", "Sheet", "Geometry",
           "__version__"]
