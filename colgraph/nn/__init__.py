"""Neural-network parts of a column sheet: the edge owner, untied per-column layers and
sparse attention."""
from .column_attention import BACKENDS, ColumnAttention
from .columns import SHARING, ColumnLayerNorm, ColumnLinear, ColumnMLP, Sharing
from .edges import EdgeEdit, SheetEdges
from .sparse import EdgeCSR, sddmm, spmm

__all__ = ["SheetEdges", "EdgeEdit", "ColumnAttention", "BACKENDS", "ColumnLinear",
           "ColumnLayerNorm", "ColumnMLP", "Sharing", "SHARING", "EdgeCSR", "sddmm", "spmm"]
