"""Neural-network parts of a column sheet: the edge owner, untied per-column layers and
sparse attention."""
from .column_attention import BACKENDS, ColumnAttention
from .columns import ColumnLayerNorm, ColumnLinear, ColumnMLP
from .edges import EdgeEdit, SheetEdges
from .sparse import EdgeCSR, sddmm, spmm

__all__ = ["SheetEdges", "EdgeEdit", "ColumnAttention", "BACKENDS", "ColumnLinear", "ColumnLayerNorm", "ColumnMLP",
           "EdgeCSR", "sddmm", "spmm"]
