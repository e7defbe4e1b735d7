"""ColumnAttention: sparse graph attention between columns, with untied parameters.

Symbols: ``B`` batch, ``N`` columns, ``E`` edges, ``H`` heads, ``C`` channels,
``D`` query/key size per head, ``Ch = C / H`` value size per head.

Every column ``t`` attends over its incoming edges ``s -> t``::

    logit[b, e, h] = q[b, t, h] . k[b, s, h] / sqrt(D) + edge_bias[e, h]
    alpha = softmax of logit over the incoming edges of t
    out[b, t, h] = sum_e alpha[b, e, h] * v[b, s, h]

``q`` and ``k`` come from per-column projections; ``v`` is the source column's own
(normalised) state unless ``value_proj=True`` adds untied value and output projections.
``edge_bias`` is the learned connectivity, initialised from edge length as
``-length^2 / (2 sigma^2)`` clamped at ``-bias_clamp`` (new edges grown during training get
the same prior). The edges themselves belong to a :class:`~colgraph.nn.SheetEdges` (the
model's ``edges``), shared by every layer of the sheet; the layer registers its
``edge_bias`` there so that pruning and growing edit it in lockstep.

The arithmetic is done by an attention kernel of :mod:`colgraph.nn.kernels` (``backend``:
``"sparse"`` by default, ``"pyg"``, ``"dense"``, or any kernel added with
:func:`~colgraph.nn.register_kernel`); the layer owns the parameters, the kernel the maths.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..parallel.shard import exchange
from .columns import ColumnDropout, ColumnLinear, Sharing
from .edges import SheetEdges
from .kernels import AttentionKernel, get_kernel

__all__ = ["ColumnAttention"]


class ColumnAttention(nn.Module):
    """Sparse multi-head attention over a sheet's edges with per-column parameters.

    Args:
        edges: the sheet's :class:`~colgraph.nn.SheetEdges` (``N`` columns, ``E`` edges).
        channels: state size ``C``.
        heads: attention heads ``H`` (must divide ``channels``).
        qk_dim: query/key size per head ``D`` (default ``C / H``; smaller is cheaper).
        value_proj: add untied value and output projections (default: values are the
            source columns' states).
        dropout: attention dropout on the per-edge weights.
        bias_sigma: length scale of the initial edge bias (default: mean edge length at
            construction).
        bias_clamp: the initial bias is at least ``-bias_clamp``.
        backend: the attention kernel: a name registered in
            :data:`~colgraph.nn.KERNELS` (``"sparse"``, ``"pyg"``, ``"dense"``, ...) or a
            callable with the kernel contract of :mod:`colgraph.nn.kernels`.
        sharing: how columns share the projections (:class:`~colgraph.nn.Sharing`; default
            untied). The per-edge bias is always per edge.

    ``forward(x, need_weights=True)`` takes ``x [N, B, C]`` (columns first) and returns
    ``(out [N, B, C], attention [E, H])`` where ``attention`` is the per-edge attention
    averaged over the batch (before dropout; differentiable, used by the wiring cost), or
    ``None`` with ``need_weights=False`` (the kernel then computes no batch mean). The layer
    keeps a reference to ``edges`` (not a submodule: the model owns it), so move both to a
    device together.

    Example:
        >>> from colgraph.geometry import grid, knn
        >>> edges = SheetEdges(grid(5, wiring=knn(k=4)))
        >>> attn = ColumnAttention(edges, channels=8, heads=2)
        >>> out, alpha = attn(torch.randn(25, 3, 8))
        >>> out.shape, alpha.shape
        (torch.Size([25, 3, 8]), torch.Size([100, 2]))
    """

    def __init__(self, edges: SheetEdges, channels: int, heads: int = 1,
                 qk_dim: int | None = None, value_proj: bool = False, dropout: float = 0.0,
                 bias_sigma: float | None = None, bias_clamp: float = 4.0,
                 backend: str | AttentionKernel = "sparse",
                 sharing: Sharing | None = None) -> None:
        super().__init__()
        if channels % heads != 0:
            raise ValueError(f"'heads' must divide 'channels' (got channels={channels}, "
                             f"heads={heads}). Set model.heads to a divisor of "
                             f"model.channels, e.g. model.heads=1.")
        self.kernel = get_kernel(backend)
        if bias_sigma is not None and not (math.isfinite(bias_sigma) and bias_sigma > 0):
            raise ValueError(f"bias_sigma must be > 0 or None (= the mean edge length), got "
                             f"{bias_sigma} (model.bias_sigma).")
        if not (math.isfinite(bias_clamp) and bias_clamp >= 0):
            raise ValueError(f"bias_clamp must be a finite number >= 0, got {bias_clamp} "
                             f"(model.bias_clamp).")
        object.__setattr__(self, "edges", edges)  # a reference, not a submodule
        columns = edges.num_owned
        self.channels, self.heads = channels, heads
        self.qk_dim = qk_dim or channels // heads
        self.backend = backend if isinstance(backend, str) else getattr(
            backend, "__name__", type(backend).__name__)
        self.attn_drop = ColumnDropout(dropout)  # on the per-edge weights
        self.bias_sigma, self.bias_clamp = bias_sigma, bias_clamp
        qk = heads * self.qk_dim
        self.query = ColumnLinear(columns, channels, qk, bias=False, sharing=sharing)
        self.key = ColumnLinear(columns, channels, qk, bias=False, sharing=sharing)
        self.value = ColumnLinear(columns, channels, channels, sharing=sharing) if value_proj else None
        self.out = ColumnLinear(columns, channels, channels, sharing=sharing) if value_proj else None
        mean = edges.initial_mean_length
        sigma = bias_sigma if bias_sigma is not None else (mean if mean is not None else 1.0)
        self.sigma = max(sigma, 1e-6)  # fixed at construction: grown edges get the same prior
        self.edge_bias = nn.Parameter(torch.empty(edges.num_edges, heads))  # (E, H)
        edges.register(self, "edge_bias", init=self.bias_prior)
        self.record: list[dict[str, Tensor]] | None = None  # see start_recording()
        self.reset_parameters()

    @property
    def columns(self) -> int:
        return self.edges.num_owned

    @property
    def num_edges(self) -> int:
        return self.edge_bias.size(0)

    def bias_prior(self, edges: SheetEdges, index: Tensor, length: Tensor) -> Tensor:
        """Initial bias of edges of the given lengths: ``-l^2 / (2 sigma^2)``, clamped."""
        return (-length.float().pow(2) / (2 * self.sigma**2)).clamp(min=-self.bias_clamp)

    def reset_parameters(self) -> None:
        for lin in (self.query, self.key, self.value, self.out):
            if lin is not None:
                lin.reset_parameters()
        bias = self.bias_prior(self.edges, self.edges.index, self.edges.length)
        with torch.no_grad():
            self.edge_bias.copy_(bias.unsqueeze(1).expand_as(self.edge_bias))

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, need_weights: bool = True) -> tuple[Tensor, Tensor | None]:
        N, B, C = x.shape
        H, D, Ch = self.heads, self.qk_dim, self.channels // self.heads
        edge_index = self.edges.index
        if edge_index.size(1) != self.num_edges:
            raise RuntimeError(f"ColumnAttention holds {self.num_edges} edge biases but the "
                               f"sheet has {edge_index.size(1)} edges. Edit edges only with "
                               f"model.edges.edit(...) so every per-edge tensor stays in step.")
        q = self.query(x).view(N, B, H, D)  # (N, B, H, D)
        k = self.key(x).view(N, B, H, D)  # (N, B, H, D)
        v = (self.value(x) if self.value is not None else x).view(N, B, H, Ch)
        # a column-sharded sheet: keys and values of the halo from their owners
        ks, vs = exchange(self.edges.halo(), self.edges.shard, k, v)  # (N_s, B, H, *)
        out, alpha = self.kernel(q, ks, vs, self.edges, self.edge_bias, self.attn_drop,
                                 need_weights=need_weights)  # (N, B, H, Ch), (E, H) or None
        self._check_kernel(out, alpha, [N, B, H, Ch], need_weights)
        if self.record is not None:
            self._record(v, out)
        out = out.reshape(N, B, C)  # (N, B, C)
        if self.out is not None:
            out = self.out(out)
        return out, alpha

    # ------------------------------------------------------------------ recording
    def start_recording(self) -> None:
        """Record each call's values ``v``, output ``out`` and, after backward, the gradient
        at ``out``: what gradient-based edge growth needs (see
        :func:`colgraph.plasticity.gradient_scores`). Costs one extra ``[N, B, C]`` tensor
        per step; :meth:`stop_recording` frees it."""
        self.record = []

    def stop_recording(self) -> list[dict[str, Tensor]]:
        """Stop recording and return the records: one dict per call with ``v``, ``out`` and
        ``grad`` (``None`` if no backward ran), each ``[N, B * C]``."""
        record, self.record = self.record or [], None
        return record

    def _record(self, v: Tensor, out: Tensor) -> None:
        N = v.size(0)
        entry: dict[str, Tensor | None] = {"v": v.detach().reshape(N, -1),  # (N, B*C)
                                           "out": out.detach().reshape(N, -1), "grad": None}
        if out.requires_grad:
            def keep(grad: Tensor) -> None:
                entry["grad"] = grad.detach().reshape(N, -1)  # (N, B*C)

            out.register_hook(keep)
        self.record.append(entry)

    def _check_kernel(self, out: Tensor, alpha: Tensor | None, shape: list[int],
                      need_weights: bool) -> None:
        """The kernel kept the contract's shapes (a shape check: no host sync)."""
        expected = [self.num_edges, self.heads] if need_weights else None
        got = list(alpha.shape) if isinstance(alpha, Tensor) else alpha
        if list(out.shape) != shape or got != expected:
            raise RuntimeError(f"Attention kernel '{self.backend}' returned out "
                               f"{list(out.shape)} and weights {got}; expected out {shape} and "
                               f"weights {expected} (need_weights={need_weights}). See the "
                               f"kernel contract in colgraph.nn.kernels.")

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(columns={self.columns}, channels={self.channels}, "
                f"heads={self.heads}, qk_dim={self.qk_dim}, edges={self.num_edges}, "
                f"backend={self.backend!r})")
