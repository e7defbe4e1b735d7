"""Neural-network parts of a column sheet: untied per-column layers and sparse attention."""
from .column_attention import BACKENDS, ColumnAttention
from .columns import ColumnLayerNorm, ColumnLinear, ColumnMLP
from .sparse import EdgeCSR, sddmm, spmm

__all__ = ["ColumnAttention", "BACKENDS", "ColumnLinear", "ColumnLayerNorm", "ColumnMLP",
           "EdgeCSR", "sddmm", "spmm"]
