"""The non-finite guard: one check per step of the loss and the gradients, then clipping.

Called after ``loss.backward()`` and before ``optimizer.step()``. On the happy path it costs
ONE host synchronisation per step (a single flag tensor read back; with several processes,
one all-reduce of it first, so every rank skips or stops together and no collective hangs).
Only when something is wrong does it look further, to name the culprit: the loss, or the
first parameter whose gradient is not finite, and whether the batch itself held non-finite
inputs. The same all-reduce carries a :class:`StopRequest` (Ctrl-C on some rank), so the
ranks agree on the batch to stop after at no extra cost.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from ..checkpoint import first_nonfinite
from ..distributed import Distributed
from ..parallel.shard import ColumnShard

__all__ = ["check_and_clip", "StopRequest"]


class StopRequest:
    """A request to stop (Ctrl-C) that several processes agree on: ``pressed`` on this
    rank (set by a signal handler); ``agreed`` once it was pressed on ANY rank as of the
    last :func:`check_and_clip` given it, the same on every rank."""

    def __init__(self) -> None:
        self.pressed = self.agreed = False


def check_and_clip(loss: Tensor, model: nn.Module, max_norm: float,
                   ranks: Distributed | None = None,
                   params: Iterable[tuple[str, nn.Parameter]] | None = None,
                   stop: StopRequest | None = None,
                   shard: ColumnShard | None = None) -> str | None:
    """Check that ``loss`` and the total gradient norm are finite; if so, clip the gradients
    to ``max_norm`` (0: no clipping) as ``clip_grad_norm_`` does and return ``None``;
    otherwise return what is wrong (``"the loss is nan (on some rank)"`` or
    ``"gradient of <name> (<k> of <n> values non-finite)"``) and leave the gradients alone.

    The norm is checked BEFORE clipping: ``clip_grad_norm_`` would spread one NaN over every
    gradient and hide which tensor it came from. ``stop``: its ``pressed`` flag rides along
    in the ranks' all-reduce and sets ``stop.agreed`` on every rank when any pressed.
    ``shard``: on a column-sharded sheet, the norm is the whole sheet's (the squared norm of
    the gradients of this process's rows rides along in the same all-reduce).

    Example:
        >>> lin = nn.Linear(2, 1)
        >>> loss = lin(torch.ones(1, 2)).sum()
        >>> loss.backward()
        >>> check_and_clip(loss, lin, max_norm=1.0) is None
        True
    """
    named = list(params if params is not None else model.named_parameters())
    grads = [p.grad for _, p in named if p.grad is not None]
    sharded = shard is not None and shard.enabled
    if sharded:  # the whole sheet's norm: rows held here, summed over the column group
        whole = {id(p) for p in shard.replicated(model)}
        rows = [p.grad for _, p in named if p.grad is not None and id(p) not in whole]
        row_sq = _squared_norm(rows, loss)
    norm = torch.linalg.vector_norm(torch.stack(
        torch._foreach_norm(grads) or [loss.new_zeros(())]))
    flags = [~torch.isfinite(loss.detach()), ~torch.isfinite(norm)]
    if stop is not None:
        flags.append(loss.new_tensor(stop.pressed, dtype=torch.bool))
    flags = torch.stack(flags).float()
    if sharded:
        flags = torch.cat([flags, row_sq.float().view(1)])
    if ranks is not None:
        flags = ranks.mean_tensor(flags)  # > 0 where any rank saw it
    loss_bad, grad_bad, *rest = flags.tolist()  # the one host synchronisation
    if sharded:  # mean over the world = (sum over the column group) / columns
        own_sq = float(_squared_norm(grads, loss)) - float(row_sq)
        norm = loss.new_tensor(max(own_sq + rest.pop() * shard.parts, 0.0) ** 0.5)
    if stop is not None:
        stop.agreed = stop.agreed or rest[0] > 0
    if loss_bad:
        return f"the loss is {loss.item()} (on some rank)"
    if grad_bad:
        return "gradient of " + str(first_nonfinite((n, p.grad) for n, p in named))
    if max_norm and grads:
        torch._foreach_mul_(grads, (max_norm / (norm + 1e-6)).clamp(max=1.0))
    return None


def _squared_norm(grads: list[Tensor], like: Tensor) -> Tensor:
    norms = torch._foreach_norm(grads) if grads else []
    return torch.stack(norms).pow(2).sum() if norms else like.new_zeros(())
