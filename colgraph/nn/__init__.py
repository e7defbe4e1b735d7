"""Neural-network parts of a column sheet: the edge owner, untied per-column layers and
sparse attention."""
from .column_attention import BACKENDS, ColumnAttention
from .columns import (SHARING, ColumnDropout, ColumnLayerNorm, ColumnLinear, ColumnMLP, Sharing,
                      keep_mask)
from .edges import EdgeEdit, SheetEdges
from .sparse import EdgeBlock, EdgeCSR, edge_softmax, sddmm, spmm

__all__ = ["SheetEdges", "EdgeEdit", "ColumnAttention", "BACKENDS", "ColumnLinear",
           "ColumnLayerNorm", "ColumnMLP", "ColumnDropout", "keep_mask", "Sharing", "SHARING",
           "EdgeCSR", "EdgeBlock", "edge_softmax", "sddmm", "spmm"]
