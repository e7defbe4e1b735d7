"""Untied per-column layers: every column owns its parameters (no weight sharing).

Symbols: ``B`` batch, ``N`` columns, ``C`` channels. Inputs are ``[N, B, C_in]``: columns
first, as PyG puts nodes first. In this layout a per-column matmul is one contiguous
``torch.baddbmm`` over columns, with no transposes (measured: transposes and strided
matmuls cost ~25% of a training step at N = 4096 in the batch-first layout).

A per-column parameter is ONE tensor with a leading ``N`` dimension, applied with a batched
matmul over columns (``torch.baddbmm``): never a Python loop over columns.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ColumnLinear", "ColumnLayerNorm", "ColumnMLP"]


class ColumnLinear(nn.Module):
    """``y[b, n] = W[n] @ x[b, n] + bias[n]`` with a separate weight per column.

    Args:
        columns: number of columns ``N``.
        in_features / out_features: sizes of the input and output features.
        bias: learn a per-column bias ``[N, out]``.

    Shapes: weight ``[N, out, in]`` (as ``nn.Linear`` per column), input ``[N, B, in]`` ->
    output ``[N, B, out]``.

    Example:
        >>> lin = ColumnLinear(columns=10, in_features=4, out_features=3)
        >>> lin(torch.randn(10, 2, 4)).shape
        torch.Size([10, 2, 3])
    """

    def __init__(self, columns: int, in_features: int, out_features: int,
                 bias: bool = True) -> None:
        super().__init__()
        self.columns, self.in_features, self.out_features = columns, in_features, out_features
        self.weight = nn.Parameter(torch.empty(columns, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(columns, out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's default init, independently for every column
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        w_t = self.weight.transpose(1, 2)  # (N, in, out)
        if self.bias is None:
            return torch.bmm(x, w_t)  # (N, B, out)
        return torch.baddbmm(self.bias.unsqueeze(1), x, w_t)  # (N, B, out)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(columns={self.columns}, in={self.in_features}, "
                f"out={self.out_features}, bias={self.bias is not None})")


class ColumnLayerNorm(nn.Module):
    """LayerNorm over channels with a per-column scale and shift ``[N, C]``."""

    def __init__(self, columns: int, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.columns, self.channels, self.eps = columns, channels, eps
        self.weight = nn.Parameter(torch.empty(columns, channels))
        self.bias = nn.Parameter(torch.empty(columns, channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x, (self.channels,), eps=self.eps)  # (N, B, C)
        return torch.addcmul(self.bias.unsqueeze(1), x, self.weight.unsqueeze(1))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(columns={self.columns}, channels={self.channels})"


class ColumnMLP(nn.Module):
    """Per-column two-layer MLP: ``C -> hidden -> C`` with GELU and dropout."""

    def __init__(self, columns: int, channels: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = ColumnLinear(columns, channels, hidden)
        self.fc2 = ColumnLinear(columns, hidden, channels)
        self.drop = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        self.fc1.reset_parameters()
        self.fc2.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(columns={self.fc1.columns}, "
                f"channels={self.fc1.in_features}, hidden={self.fc1.out_features})")
