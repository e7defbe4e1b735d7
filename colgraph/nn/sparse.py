"""Fused sparse kernels for attention over a sheet's edges: SDDMM and SpMM on CSR.

Why hand-written: PyG's gather / scatter path materialises ``[B, E, C]`` messages, and
autograd through ``torch.sparse_csr_tensor`` values is ~10x slower still. Measured at
N = 4096, k = 32, B = 16, C = 64 (fwd + bwd): PyG gather path 3.0 s, CSR autograd 30 s,
these kernels ~0.2 s. Each ``torch.autograd.Function`` below calls torch's own CSR kernels
(``torch.sparse.mm`` and ``torch.sparse.sampled_addmm``, on CPU and CUDA) and writes the
backward pass by hand, so no per-edge feature tensor is ever built.

A batch of ``B`` samples and ``H`` heads is ``R = B * H`` independent copies of the sheet,
laid out block-diagonally as in a PyG mini-batch: node ``r * N + n``, edge ``r * E + e``.
The reference-equivalence tests check these kernels against PyG's ``MessagePassing`` and a
dense masked softmax.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["EdgeCSR", "sddmm", "spmm"]

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def _ptr(index: Tensor, size: int) -> Tensor:
    """CSR row pointer of a sorted row index."""
    counts = torch.bincount(index, minlength=size)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


@dataclass(frozen=True)
class _Block:
    """CSR structure of ``R`` block-diagonal copies of the sheet and of its transpose."""

    size: int  # R * N
    crow: Tensor  # (R * N + 1,)
    col: Tensor  # (R * E,)
    crow_t: Tensor  # transpose: rows = sources
    col_t: Tensor
    perm_t: Tensor  # edge order of the transpose: values_t = values[perm_t]

    def matrix(self, values: Tensor, transpose: bool = False) -> Tensor:
        if transpose:
            crow, col, values = self.crow_t, self.col_t, values[self.perm_t]
        else:
            crow, col = self.crow, self.col
        return torch.sparse_csr_tensor(crow, col, values.contiguous(), (self.size, self.size),
                                       check_invariants=False)


class EdgeCSR:
    """CSR view of a canonical edge list (rows = targets, columns = sources).

    Args:
        edge_index: ``[2, E]`` edges sorted by target (the ``Geometry`` order).
        num_nodes: number of columns ``N``.

    :meth:`block` returns (and caches) the block-diagonal structure for ``R`` copies. The
    cache holds the :attr:`cached_blocks` most recently used replica counts (training's batch
    size and evaluation's, say): each block is ``O(R * E)`` indices, so a cache that grew with
    every distinct batch size (a last, smaller batch, a sweep of evaluation sizes) would hold
    many copies of the edge list.
    """

    cached_blocks = 4  # training and evaluation batch sizes, and each one's last batch

    def __init__(self, edge_index: Tensor, num_nodes: int) -> None:
        src, dst = edge_index
        if dst.numel() > 1 and (dst[1:] < dst[:-1]).any():
            raise ValueError("EdgeCSR expects edges sorted by target (canonical order). "
                             "Build edges with colgraph.geometry or sort them with "
                             "colgraph.geometry.canonical_order.")
        self.num_nodes, self.num_edges = num_nodes, src.numel()
        self.src, self.dst = src, dst
        self.ptr = _ptr(dst, num_nodes)
        self.perm_t = torch.argsort(src * num_nodes + dst)
        self.ptr_t = _ptr(src[self.perm_t], num_nodes)
        self._blocks: OrderedDict[int, _Block] = OrderedDict()

    def block(self, replicas: int) -> _Block:
        if replicas in self._blocks:
            self._blocks.move_to_end(replicas)
        else:
            n, e = self.num_nodes, self.num_edges
            r = torch.arange(replicas, device=self.src.device).unsqueeze(1)  # (R, 1)

            def crow(ptr: Tensor) -> Tensor:
                body = (ptr[:-1].unsqueeze(0) + r * e).flatten()
                return torch.cat([body, body.new_tensor([replicas * e])])

            self._blocks[replicas] = _Block(
                size=replicas * n,
                crow=crow(self.ptr), col=(self.src.unsqueeze(0) + r * n).flatten(),
                crow_t=crow(self.ptr_t), col_t=(self.dst[self.perm_t].unsqueeze(0) + r * n).flatten(),
                perm_t=(self.perm_t.unsqueeze(0) + r * e).flatten())
            while len(self._blocks) > self.cached_blocks:
                self._blocks.popitem(last=False)  # least recently used
        return self._blocks[replicas]


def _sampled(block: _Block, a: Tensor, b: Tensor) -> Tensor:
    """``(a @ b.T)`` at the block's edges: ``out[e] = a[target_e] . b[source_e]``."""
    mask = block.matrix(a.new_zeros(block.col.numel()))
    return torch.sparse.sampled_addmm(mask, a, b.t(), beta=0.0).values()


class _SDDMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, block: _Block, q: Tensor, k: Tensor) -> Tensor:
        ctx.block = block
        ctx.save_for_backward(q, k)
        return _sampled(block, q.contiguous(), k.contiguous())

    @staticmethod
    def backward(ctx, grad: Tensor):
        q, k = ctx.saved_tensors
        block = ctx.block
        grad_q = grad_k = None
        if ctx.needs_input_grad[1]:
            grad_q = torch.sparse.mm(block.matrix(grad), k)
        if ctx.needs_input_grad[2]:
            grad_k = torch.sparse.mm(block.matrix(grad, transpose=True), q)
        return None, grad_q, grad_k


class _SpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, block: _Block, values: Tensor, x: Tensor) -> Tensor:
        ctx.block = block
        ctx.save_for_backward(values, x)
        return torch.sparse.mm(block.matrix(values), x.contiguous())

    @staticmethod
    def backward(ctx, grad: Tensor):
        values, x = ctx.saved_tensors
        block = ctx.block
        grad = grad.contiguous()
        grad_values = grad_x = None
        if ctx.needs_input_grad[1]:
            grad_values = _sampled(block, grad, x.contiguous())
        if ctx.needs_input_grad[2]:
            grad_x = torch.sparse.mm(block.matrix(values, transpose=True), grad)
        return None, grad_values, grad_x


def sddmm(block: _Block, q: Tensor, k: Tensor) -> Tensor:
    """Per-edge dot products ``q[target] . k[source]``: ``[R*N, D] x [R*N, D] -> [R*E]``."""
    return _SDDMM.apply(block, q, k)


def spmm(block: _Block, values: Tensor, x: Tensor) -> Tensor:
    """Weighted sum over incoming edges: ``out[t] = sum_e values[e] x[source_e]``."""
    return _SpMM.apply(block, values, x)
