"""colgraph: the Columnformer as a graph neural network.

A sheet of untied, spatially embedded columns applied recurrently, communicating by sparse
graph attention over the edges of a geometry.
"""
import os

# Huge pages for large CPU tensors. Untied layers make every weight gradient a fresh
# [N, out, in] tensor each step, and page faults on such allocations cost more than the
# matmuls that fill them (measured 3-4x). torch reads this once, at its first CPU
# allocation, so it takes effect when colgraph is imported before any tensor is made (as in
# `import torch; import colgraph`); an explicit setting (THP_MEM_ALLOC_ENABLE=0) wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from .geometry import Geometry
from .model import Columnformer, ColumnformerConfig, ColumnformerOutput, Sheet

__version__ = "0.1.0"

__all__ = ["Columnformer", "ColumnformerConfig", "ColumnformerOutput", "Sheet", "Geometry",
           "__version__"]
