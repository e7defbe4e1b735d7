"""Neural-network parts of a column sheet: the edge owner, untied per-column layers, sparse
attention and its kernels."""
from .column_attention import ColumnAttention
from .columns import (SHARING, ColumnDropout, ColumnLayerNorm, ColumnLinear, ColumnMLP, Sharing,
                      keep_mask)
from .edges import ColumnMove, EdgeEdit, SheetEdges
from .kernels import KERNELS, AttentionKernel, get_kernel, register_kernel
from .sparse import EdgeBlock, EdgeCSR, edge_softmax, sddmm, spmm

__all__ = ["SheetEdges", "EdgeEdit", "ColumnMove", "ColumnAttention", "KERNELS", "AttentionKernel",
           "register_kernel", "get_kernel", "ColumnLinear", "ColumnLayerNorm", "ColumnMLP",
           "ColumnDropout", "keep_mask", "Sharing", "SHARING", "EdgeCSR", "EdgeBlock",
           "edge_softmax", "sddmm", "spmm"]
