"""Sums over batches and the held-out evaluation of a run."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..data import iterate_batches
from ..distributed import Distributed
from ..objectives import topographic_smoothness, wiring_length
from ..tasks import Task

__all__ = ["Totals", "evaluate", "smoothness_radius"]


class Totals:
    """Sample-weighted sums of a task's loss and statistics over batches.

    Example:
        >>> t = Totals()
        >>> t.add(torch.tensor(0.5), {"acc": torch.tensor(3.0)}, n=4)
        >>> t.means("train_")
        {'train_loss': 0.5, 'train_acc': 0.75}
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, loss: torch.Tensor, stats: dict[str, torch.Tensor], n: int,
            **extra: float) -> None:
        for k, v in {"loss": float(loss) * n, **{k: float(v) for k, v in stats.items()},
                     **{k: v * n for k, v in extra.items()}}.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += n

    def means(self, prefix: str, ranks: Distributed | None = None,
              keys: Sequence[str] = ()) -> dict[str, float]:
        """Means over the batches seen (on every rank, with ``ranks``). ``keys``: sums every
        rank reduces even where it saw no batch (a rank with an empty share of the test
        set still reaches the collective with the same values)."""
        sums, n = {**dict.fromkeys(keys, 0.0), **self.sums}, self.n
        if ranks is not None and ranks.enabled:
            total = ranks.sum({**sums, "__n": n})
            n = total.pop("__n")
            sums = total
        return {f"{prefix}{k}": v / max(n, 1) for k, v in sums.items()}

    def reduced(self, ranks: Distributed | None = None) -> "Totals":
        """The sums over every rank (one all-reduce; every rank must call it)."""
        out = Totals()
        out.sums, out.n = dict(self.sums), self.n
        if ranks is not None and ranks.enabled:
            total = ranks.sum({**self.sums, "__n": self.n})
            out.n = int(total.pop("__n"))
            out.sums = total
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "n": self.n}

    def load_state_dict(self, state: dict[str, Any], main: bool = True) -> None:
        """Continue from saved (global) sums: on the main rank; the other ranks start from
        zeros under the same keys (so their reductions match and the sums count once)."""
        self.sums = {k: float(v) if main else 0.0 for k, v in state["sums"].items()}
        self.n = int(state["n"]) if main else 0


def smoothness_radius(cfg: Any, edge_length: torch.Tensor, shard: Any = None) -> float:
    """``smoothness.radius``, or by default the median edge length of the sheet (the
    whole sheet's, on a column-sharded one: ``shard``)."""
    r = cfg.smoothness.radius
    if r is not None:
        return float(r)
    if shard is None or not shard.enabled:
        return float(edge_length.median())
    whole = shard.gather(edge_length)  # on the group's first process, which shares it
    return float(shard.sum(edge_length.new_tensor(0.0 if whole is None else
                                                  float(whole.median()))))


@torch.no_grad()
def evaluate(model: Task, x: torch.Tensor, y: torch.Tensor, batch_size: int,
             device: torch.device, radius: float | None = None,
             ranks: Distributed | None = None) -> dict[str, float]:
    """On a held-out set: the task's statistics (``test_<stat>``) and loss, the
    attention-weighted wiring length, topographic smoothness (neighbours within ``radius``,
    default every edge; see :func:`colgraph.objectives.topographic_smoothness`), the fraction
    of silent state units and the mean number of active columns per step. With ``ranks``,
    each process evaluates its share of the set and the means are over all of it."""
    if ranks is not None:
        x, y = ranks.shard(x, y)
    model.eval()
    cf = model.columnformer
    edges = cf.edges
    totals = Totals()
    gen = torch.Generator().manual_seed(0)  # the same random pairs every evaluation
    for xb, yb in iterate_batches(x, y, batch_size):
        xb, yb = xb.to(device), yb.to(device)
        res = model(xb, yb)
        act = res.out.activity
        smooth = topographic_smoothness(
            res.out.state, edges.index, edges.length, edges.pos, radius, generator=gen,
            period=edges.period, metric=edges.metric, shard=edges.shard)["smoothness"]
        totals.add(res.loss, res.stats, len(xb), wiring_length=float(
            wiring_length(res.out.attention, edges.index, edges.length, shard=edges.shard)),
            smoothness=smooth, silent=float(act.silent.mean()),
            active_columns=float(act.active.mean()))
    keys = ("loss", *model.stats, "wiring_length", "smoothness", "silent", "active_columns")
    m = totals.means("test_", ranks, keys)
    extra = ("test_loss", "test_wiring_length", "test_smoothness", "test_silent",
             "test_active_columns")
    return {**{k: v for k, v in m.items() if k not in extra}, "test_loss": m["test_loss"],
            "wiring_length": m["test_wiring_length"], "smoothness": m["test_smoothness"],
            "silent": m["test_silent"], "active_columns": m["test_active_columns"]}
