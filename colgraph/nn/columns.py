"""Untied per-column layers: every column owns its parameters (no weight sharing).

Symbols: ``B`` batch, ``N`` columns, ``C`` channels. Inputs are ``[N, B, C_in]``: columns
first, as PyG puts nodes first. In this layout a per-column matmul is one contiguous
``torch.baddbmm`` over columns, with no transposes (measured: transposes and strided
matmuls cost ~25% of a training step at N = 4096 in the batch-first layout).

A per-column parameter is ONE tensor with a leading ``N`` dimension, applied with a batched
matmul over columns (``torch.baddbmm``): never a Python loop over columns.

Weight sharing is a knob (:class:`Sharing`), so what untying costs and buys is measurable in
one library. Every layer keeps a leading "owner" dimension on its parameters:

* ``none`` (default): ``[N, ...]``, every column its own parameters.
* ``full``: ``[1, ...]``, one set for all columns (a graph-attention network with a
  per-edge bias).
* ``lowrank``: a shared ``[1, out, in]`` weight plus a per-column rank-``r`` correction
  ``U[n] @ V[n]^T`` (``U [N, out, r]`` starts at zero) and per-column biases / norms.
* ``groups``: ``[G, ...]``, one set per group of columns (e.g. per area); the group of each
  column is a per-column buffer.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ColumnLinear", "ColumnLayerNorm", "ColumnMLP", "ColumnDropout", "keep_mask", "Sharing",
           "SHARING"]

SHARING = ("none", "full", "lowrank", "groups")


class Sharing:
    """How columns share parameters (see the module docstring).

    Args:
        mode: ``none`` | ``full`` | ``lowrank`` | ``groups``.
        rank: rank of the per-column correction (``lowrank``).
        groups: ``[N]`` group id of each column, ids ``0 .. G-1`` (``groups``).
    """

    def __init__(self, mode: str = "none", rank: int = 4, groups: Tensor | None = None) -> None:
        if mode not in SHARING:
            raise ValueError(f"Unknown weight sharing '{mode}'. Choices: {', '.join(SHARING)} "
                             f"(model.sharing).")
        if mode == "lowrank" and rank < 1:
            raise ValueError(f"model.sharing_rank must be >= 1 for lowrank sharing (got {rank}).")
        if mode == "groups":
            if groups is None or groups.dim() != 1 or groups.numel() == 0 or groups.min() < 0:
                raise ValueError("groups sharing needs a [N] tensor of group ids >= 0.")
            groups = torch.unique(groups.long(), return_inverse=True)[1]  # ids 0 .. G-1
        self.mode, self.rank, self.groups = mode, rank, groups
        self.num_groups = int(groups.max()) + 1 if groups is not None else 1

    def owners(self, columns: int) -> int:
        """Leading size of shared tensors: ``N``, ``1`` or ``G``."""
        return {"none": columns, "full": 1, "lowrank": 1, "groups": self.num_groups}[self.mode]

    def owned(self, lo: int, hi: int) -> "Sharing":
        """The same sharing for the columns ``lo:hi`` of a column-sharded sheet (every
        process holds all ``G`` groups' parameters; its columns' group ids)."""
        if self.groups is None or (lo == 0 and hi == self.groups.numel()):
            return self
        part = copy.copy(self)
        part.groups = self.groups[lo:hi]
        return part

    def __repr__(self) -> str:
        extra = {"lowrank": f", rank={self.rank}",
                 "groups": f", groups={self.owners(0)}"}.get(self.mode, "")
        return f"Sharing({self.mode!r}{extra})"


NO_SHARING = Sharing()


class _Shared(nn.Module):
    """Mixin: parameters with a leading owner dimension and, for groups, a per-column
    ``group`` buffer; ``rows(t)`` gives a group-shared tensor one row per column."""

    def _init_sharing(self, columns: int, sharing: Sharing | None) -> int:
        self.sharing = sharing or NO_SHARING
        if self.sharing.mode == "groups":
            if self.sharing.groups.numel() != columns:
                raise ValueError(f"groups sharing has {self.sharing.groups.numel()} group ids "
                                 f"for {columns} columns.")
            self.register_buffer("group", self.sharing.groups.clone())
        return self.sharing.owners(columns)

    def rows(self, t: Tensor | None) -> Tensor | None:
        """One row per column: the tensor itself unless shared by groups (then a gather)."""
        return t[self.group] if t is not None and self.sharing.mode == "groups" else t


def _accumulates_in_place(param: Tensor | None) -> bool:
    """Whether a weight gradient may be added straight into ``param.grad`` (inside a
    backward pass): only when the engine is about to accumulate into that very ``.grad``
    (a plain ``backward()``; not ``torch.autograd.grad`` or ``backward(inputs=...)``),
    nothing observes the gradient on its way (tensor or post-accumulate hooks, which
    distributed data parallel registers: it is excluded outright) and ``.grad`` is absent
    or a plain tensor. The engine then finds no gradient for the weight (every use
    returned ``None``) and leaves ``.grad`` as this left it. Otherwise autograd gets the
    gradient as usual."""
    if (param is None or (param.grad is not None and param.grad.requires_grad)
            or param._backward_hooks or param._post_accumulate_grad_hooks
            or (torch.distributed.is_available() and torch.distributed.is_initialized())):
        return False
    try:
        node = torch.autograd.graph.get_gradient_edge(param).node
        return bool(torch._C._will_engine_execute_node(node))
    except RuntimeError:  # torch.autograd.grad(): gradients are returned, not accumulated
        return False


class _ColumnMatmul(torch.autograd.Function):
    """``y = x @ W^T + b`` per column, with a hand-written backward.

    Why: autograd differentiates ``bmm(x, W.transpose(1, 2))`` into a weight gradient in
    ``[N, in, out]`` layout and then copies it to ``[N, out, in]``; at N = 4096, C = 64 that
    copy of a 67M-float tensor is a third of the layer's cost. Computing
    ``grad_W = g^T @ x`` directly in ``[N, out, in]`` measured 1.5x faster (fwd + bwd).

    A recurrent sheet uses each weight ``T`` times, so autograd would build ``T`` fresh
    ``[N, out, in]`` gradients and add each into ``weight.grad``: a whole weight of
    workspace (1.6 GB for one MLP weight at N = 10^5) and three extra passes over it. When
    a plain ``backward()`` is accumulating into ``weight.grad`` anyway, this adds
    ``g^T @ x`` into it in place instead (:func:`_accumulates_in_place` says when).

    With bf16 weights (``model.weight_dtype=bfloat16``) the input and the incoming gradient
    are rounded to bf16 and the three matmuls run in bf16 (fp32 accumulation inside the
    kernel); the output and the input gradient return at the state's precision (fp32).
    Saving the bf16 input halves what is kept for backward; on this CPU (x86_64, 2 cores) a
    bf16 bmm measured 1.6x faster than fp32 at N = 65536, B = 4, C = 16.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.state_dtype = x.dtype
        x = x.to(weight.dtype)  # bf16 weights: a bf16 matmul (fp32 accumulation), see below
        ctx.save_for_backward(x, weight)
        ctx.param = weight if weight.is_leaf else None  # the Parameter itself (not a gather)
        ctx.has_bias = bias is not None
        w_t = weight.transpose(1, 2)  # (N, in, out)
        if bias is None:
            y = torch.bmm(x, w_t)  # (N, B, out)
        else:
            y = torch.baddbmm(bias.unsqueeze(1), x, w_t)  # (N, B, out)
        return y.to(ctx.state_dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        g = grad.to(weight.dtype)
        if ctx.needs_input_grad[0]:
            grad_x = torch.bmm(g, weight).to(ctx.state_dtype)  # (N, B, in)
        if ctx.needs_input_grad[1]:
            if _accumulates_in_place(ctx.param):  # (N, out, in) straight into .grad
                if ctx.param.grad is None:
                    ctx.param.grad = torch.bmm(g.transpose(1, 2), x)
                else:
                    ctx.param.grad.baddbmm_(g.transpose(1, 2), x)
            else:
                grad_w = torch.bmm(g.transpose(1, 2), x)  # (N, out, in)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(1)  # (N, out), summed at the state's precision
        return grad_x, grad_w, grad_b


class ColumnLinear(_Shared):
    """``y[b, n] = W[n] @ x[b, n] + bias[n]`` with a separate weight per column.

    Args:
        columns: number of columns ``N``.
        in_features / out_features: sizes of the input and output features.
        bias: learn a per-column bias ``[N, out]``.
        sharing: how columns share the weight (:class:`Sharing`; default: not at all).

    Shapes: weight ``[N, out, in]`` (as ``nn.Linear`` per column; ``[1, ...]`` / ``[G, ...]``
    when shared), input ``[N, B, in]`` -> output ``[N, B, out]``.

    Example:
        >>> lin = ColumnLinear(columns=10, in_features=4, out_features=3)
        >>> lin(torch.randn(10, 2, 4)).shape
        torch.Size([10, 2, 3])
    """

    def __init__(self, columns: int, in_features: int, out_features: int,
                 bias: bool = True, sharing: Sharing | None = None) -> None:
        super().__init__()
        self.columns, self.in_features, self.out_features = columns, in_features, out_features
        owners = self._init_sharing(columns, sharing)
        mode = self.sharing.mode
        self.weight = nn.Parameter(torch.empty(owners, out_features, in_features))
        bias_rows = columns if mode == "lowrank" else owners
        self.bias = nn.Parameter(torch.empty(bias_rows, out_features)) if bias else None
        self.u = self.v = None
        if mode == "lowrank":  # W[n] = W + U[n] @ V[n]^T
            self.u = nn.Parameter(torch.empty(columns, out_features, self.sharing.rank))
            self.v = nn.Parameter(torch.empty(columns, in_features, self.sharing.rank))
        # tensors with one row per column grow with the sheet (see SheetEdges)
        self.per_column = {"none": ("weight", "bias"), "full": (), "lowrank": ("bias", "u", "v"),
                           "groups": ("group",)}[mode]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's default init, independently for every column (or owner)
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)
        if self.u is not None:
            nn.init.zeros_(self.u)  # every column starts at the shared weight
            nn.init.normal_(self.v, std=1.0 / math.sqrt(self.in_features))

    def forward(self, x: Tensor) -> Tensor:
        mode = self.sharing.mode
        if mode in ("full", "lowrank"):  # one matmul for all columns
            state, x = x.dtype, x.to(self.weight.dtype)
            bias = self.bias if mode == "full" or self.bias is None else None
            y = F.linear(x, self.weight[0], None if bias is None else bias[0])  # (N, B, out)
            if mode == "lowrank":
                y = torch.baddbmm(y, torch.bmm(x, self.v), self.u.transpose(1, 2))
                if self.bias is not None:
                    y = y + self.bias.unsqueeze(1)
            return y.to(state)
        return _ColumnMatmul.apply(x, self.rows(self.weight), self.rows(self.bias))

    def __repr__(self) -> str:
        share = "" if self.sharing.mode == "none" else f", sharing={self.sharing}"
        return (f"{self.__class__.__name__}(columns={self.columns}, in={self.in_features}, "
                f"out={self.out_features}, bias={self.bias is not None}{share})")


class _AffineLayerNorm(torch.autograd.Function):
    """``layer_norm(x) * weight + bias`` with weight / bias broadcast over the batch
    (``[N, 1, C]`` per column, or ``[C]``), keeping only ``x`` and the row statistics.

    Why hand-written: ``F.layer_norm`` (whose affine weight must be ``[C]``) followed by
    ``addcmul`` saves the normalised ``x`` for the weight gradient as well as ``x``: one
    more state-sized tensor per norm and step (256 MB per norm and step at N = 10^6,
    B = 4, C = 16). Here the backward recomputes it from ``x``, mean and 1/std.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
        C = x.size(-1)
        out, mean, rstd = torch.native_layer_norm(x, (C,), None, None, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.shapes = weight.shape, bias.shape
        return out.mul_(weight).add_(bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight, mean, rstd = ctx.saved_tensors
        w_shape, b_shape = ctx.shapes
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.native_layer_norm_backward(
                grad * weight, x, (x.size(-1),), mean, rstd, None, None,
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            xhat = (x - mean).mul_(rstd)
            grad_w = xhat.mul_(grad).sum_to_size(w_shape)
        if ctx.needs_input_grad[2]:
            grad_b = grad.sum_to_size(b_shape)
        return grad_x, grad_w, grad_b, None


class ColumnLayerNorm(_Shared):
    """LayerNorm over channels with a per-column scale and shift ``[N, C]`` (shared as
    :class:`Sharing` says; ``lowrank`` keeps them per column)."""

    def __init__(self, columns: int, channels: int, eps: float = 1e-5,
                 sharing: Sharing | None = None) -> None:
        super().__init__()
        self.columns, self.channels, self.eps = columns, channels, eps
        owners = self._init_sharing(columns, sharing)
        if self.sharing.mode == "lowrank":
            owners = columns
        self.weight = nn.Parameter(torch.empty(owners, channels))
        self.bias = nn.Parameter(torch.empty(owners, channels))
        self.per_column = {"none": ("weight", "bias"), "full": (), "lowrank": ("weight", "bias"),
                           "groups": ("group",)}[self.sharing.mode]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.sharing.mode == "full":
            weight, bias = self.weight[0], self.bias[0]  # (C,)
        else:
            weight, bias = self.rows(self.weight).unsqueeze(1), self.rows(self.bias).unsqueeze(1)
        return _AffineLayerNorm.apply(x, weight, bias, self.eps)  # (N, B, C)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(columns={self.columns}, channels={self.channels})"


def keep_mask(shape: tuple[int, ...], p: float, device: torch.device | None = None) -> Tensor:
    """Boolean dropout mask: each element kept with probability ``1 - p`` (to 1 / 32768).

    Why hand-written: torch's CPU generator costs ~8 ns per draw whatever its width, and
    ``F.dropout`` draws one per element; here one 64-bit draw gives four 15-bit lanes, so a
    mask costs a quarter of the draws (measured: a main-job MLP mask 4 ms instead of 30 ms;
    ``F.dropout`` was 32% of a main-job training step). Same generator, so seeding and
    checkpointed RNG state work as for any torch op.
    """
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_()  # 63 bits
    lanes = words.view(torch.int16)[:n].bitwise_and_(0x7FFF)  # four uniform 15-bit lanes
    return (lanes >= round(p * 32768)).view(shape)


class ColumnDropout(nn.Module):
    """``nn.Dropout`` with a cheaper mask (:func:`keep_mask`): a fresh mask per call, kept
    units scaled by ``1 / (1 - p)``, identity in eval mode."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout probability must be in [0, 1) (got {p}); set "
                             f"model.dropout to e.g. 0.1.")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        scale = keep_mask(x.shape, self.p, x.device).to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x * scale

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ColumnMLP(nn.Module):
    """Per-column two-layer MLP: ``C -> hidden -> C`` with GELU and dropout."""

    def __init__(self, columns: int, channels: int, hidden: int, dropout: float = 0.0,
                 sharing: Sharing | None = None) -> None:
        super().__init__()
        self.fc1 = ColumnLinear(columns, channels, hidden, sharing=sharing)
        self.fc2 = ColumnLinear(columns, hidden, channels, sharing=sharing)
        self.drop = ColumnDropout(dropout)

    def reset_parameters(self) -> None:
        self.fc1.reset_parameters()
        self.fc2.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(columns={self.fc1.columns}, "
                f"channels={self.fc1.in_features}, hidden={self.fc1.out_features})")
