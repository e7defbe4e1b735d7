"""Attention kernels: one contract, a registry of implementations (``model.backend``).

Symbols: ``B`` batch, ``N`` columns, ``E`` edges, ``H`` heads, ``D`` query/key size per head,
``Ch`` value size per head.

:class:`~colgraph.nn.ColumnAttention` owns the parameters (projections, per-edge bias); a
kernel does the arithmetic of attention over the sheet's edges. Every kernel is a callable::

    kernel(q, k, v, edges, bias, dropout, need_weights) -> (out, weights)

with

* ``q``: ``[N, B, H, D]`` queries of the target columns, columns first;
* ``k``, ``v``: ``[N_s, B, H, D]`` keys and ``[N_s, B, H, Ch]`` values of the source
  columns. ``N_s = N`` on one process; on a column-sharded sheet ``N`` is the process's own
  columns and the sources are its own columns followed by its halo
  (:mod:`colgraph.parallel.shard`);
* ``edges``: the sheet's :class:`~colgraph.nn.SheetEdges`: ``edges.local_index [2, E]`` the
  edges in these coordinates (row 0 = source, row 1 = target, sorted by target; the same
  tensor as ``edges.index`` on one process), ``edges.csr()`` the cached CSR structure;
* ``bias``: ``[E, H]`` per-edge bias (the learned connectivity), in ``edges.index`` order;
* ``dropout``: a callable applied elementwise to the normalised per-edge weights before they
  weight the values (the layer's attention dropout; identity in eval mode);
* ``need_weights``: whether the caller wants the attention weights.

For each edge ``e = s -> t``, sample ``b`` and head ``h`` it computes::

    logit[e] = q[t] . k[s] / sqrt(D) + bias[e, h]
    alpha    = softmax of logit over the incoming edges of t
    out[t]   = sum_e dropout(alpha)[e] * v[s]          (0 for a column without inputs)

and returns ``out [N, B, H, Ch]`` and, when ``need_weights``, ``weights [E, H]``: ``alpha``
before dropout averaged over the batch, differentiable (the wiring cost trains through it).
Without ``need_weights`` it returns ``None`` and computes no batch mean, so a kernel can keep
nothing of ``alpha`` beyond what its own backward needs. ``out`` is differentiable with
respect to ``q``, ``k``, ``v`` and ``bias``.

Registered kernels (identical maths; ``tests/nn/test_kernels.py`` checks every registered
kernel against ``dense``):

* ``"sparse"`` (default): the fused CSR kernels of :mod:`colgraph.nn.sparse`; cost O(E).
* ``"pyg"``: PyG's ``MessagePassing`` gather / scatter (``edge_update`` + ``message``).
* ``"dense"``: a masked ``N x N`` softmax. A test reference and benchmark baseline ONLY.

Add a kernel (fused, compiled, GPU) with :func:`register_kernel`; ``model.backend=<name>``
and ``ColumnAttention(backend=<name>)`` then use it, with no change to the model.
"""
from __future__ import annotations

import math
from typing import Callable, Protocol

import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax

from ..registry import Registry
from .edges import SheetEdges
from .sparse import edge_softmax, sddmm, spmm

__all__ = ["AttentionKernel", "KERNELS", "register_kernel", "get_kernel", "sparse_attention",
           "pyg_attention", "dense_attention"]


class AttentionKernel(Protocol):
    """The signature every attention kernel has (see the module docstring for the contract)."""

    def __call__(self, q: Tensor, k: Tensor, v: Tensor, edges: SheetEdges, bias: Tensor,
                 dropout: Callable[[Tensor], Tensor], need_weights: bool
                 ) -> tuple[Tensor, Tensor | None]: ...


KERNELS = Registry("attention kernel",
                   hint="Add one with @colgraph.nn.register_kernel('{name}').")


def register_kernel(name: str) -> Callable[[AttentionKernel], AttentionKernel]:
    """Decorator: make an attention kernel available as ``model.backend=<name>`` and
    ``ColumnAttention(backend=<name>)``.

    The kernel must follow the contract of :mod:`colgraph.nn.kernels`; registering a name
    again replaces the earlier kernel (with a warning). ``del KERNELS[name]`` removes it.

    Example:
        >>> import torch
        >>> from colgraph.nn import KERNELS, get_kernel, register_kernel
        >>> @register_kernel("checked")
        ... def checked(q, k, v, edges, bias, dropout, need_weights):
        ...     out, weights = get_kernel("sparse")(q, k, v, edges, bias, dropout, need_weights)
        ...     assert torch.isfinite(out).all(), "non-finite attention output"
        ...     return out, weights
        >>> list(KERNELS)
        ['sparse', 'pyg', 'dense', 'checked']
        >>> del KERNELS["checked"]
    """
    return KERNELS.register(name)


def get_kernel(kernel: str | AttentionKernel) -> AttentionKernel:
    """The registered attention kernel named ``kernel``, or ``kernel`` itself if it is a
    callable (a kernel that was never registered).

    Example:
        >>> get_kernel("sparse") is sparse_attention
        True
    """
    return KERNELS.lookup(kernel)


@register_kernel("sparse")
def sparse_attention(q: Tensor, k: Tensor, v: Tensor, edges: SheetEdges, bias: Tensor,
                     dropout: Callable[[Tensor], Tensor], need_weights: bool
                     ) -> tuple[Tensor, Tensor | None]:
    """The ``sparse`` kernel: SDDMM, edge softmax and SpMM on the ``R = B * H`` interleaved
    copies of the sheet (:class:`~colgraph.nn.EdgeBlock`); no per-edge feature tensor."""
    N, B, H, D = q.shape
    block = edges.csr().block(B, H)  # copy r = b * H + h; node n of it: row n * R + r
    logit = sddmm(block, q.reshape(N * B * H, D), k.reshape(-1, D),
                  1 / math.sqrt(D))  # (R * E,)
    alpha = edge_softmax(block, block.add_per_edge(logit, bias))  # (R * E,)
    out = spmm(block, dropout(alpha), v.reshape(k.size(0) * B * H, -1))  # (R * N, Ch)
    return out.view(N, B, H, -1), block.batch_mean(alpha) if need_weights else None


class _MessagePassingAttention(MessagePassing):
    """The ``pyg`` kernel's gather / scatter (no parameters: they belong to the layer)."""

    def __init__(self) -> None:
        super().__init__(aggr="add", node_dim=0)

    def edge_update(self, q_i: Tensor, k_j: Tensor, bias: Tensor, index: Tensor,
                    ptr: Tensor | None, size_i: int | None) -> Tensor:
        logit = (q_i * k_j).sum(-1) / math.sqrt(q_i.size(-1))  # (E, B, H)
        return softmax(logit + bias.unsqueeze(1), index, ptr, size_i, dim=0)

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha.unsqueeze(-1) * x_j  # (E, B, H, Ch)


_message_passing = _MessagePassingAttention()


@register_kernel("pyg")
def pyg_attention(q: Tensor, k: Tensor, v: Tensor, edges: SheetEdges, bias: Tensor,
                  dropout: Callable[[Tensor], Tensor], need_weights: bool
                  ) -> tuple[Tensor, Tensor | None]:
    """The ``pyg`` kernel: PyG ``MessagePassing`` (``edge_update`` computes the weights with
    ``torch_geometric.utils.softmax``, ``message`` weights the values)."""
    size = (k.size(0), q.size(0))  # (sources, targets)
    alpha = _message_passing.edge_updater(edges.local_index, q=(None, q), k=(k, None),
                                          bias=bias, size=size)  # (E, B, H)
    out = _message_passing.propagate(edges.local_index, x=(v, None), alpha=dropout(alpha),
                                     size=size)  # (N, B, H, Ch)
    return out, alpha.mean(1) if need_weights else None


@register_kernel("dense")
def dense_attention(q: Tensor, k: Tensor, v: Tensor, edges: SheetEdges, bias: Tensor,
                    dropout: Callable[[Tensor], Tensor], need_weights: bool
                    ) -> tuple[Tensor, Tensor | None]:
    """The ``dense`` kernel: a masked ``N x N`` softmax, O(N^2) time and memory. A test
    reference and benchmark baseline ONLY."""
    N, B, H, D = q.shape
    src, dst = edges.local_index
    q, k, v = (t.permute(1, 2, 0, 3) for t in (q, k, v))  # (B, H, N, D), (B, H, N_s, *)
    mask = q.new_full((H, N, k.size(2)), float("-inf"))
    mask[:, dst, src] = bias.t()  # (H, N, N_s): row = target, column = source
    logit = q @ k.transpose(-1, -2) / math.sqrt(D)  # (B, H, N, N_s)
    alpha = torch.softmax(logit + mask, dim=-1).nan_to_num(0.0)  # (B, H, N, N_s)
    out = dropout(alpha) @ v  # (B, H, N, Ch)
    weights = alpha[:, :, dst, src].mean(0).t() if need_weights else None  # (E, H)
    return out.permute(2, 0, 1, 3), weights  # (N, B, H, Ch)
