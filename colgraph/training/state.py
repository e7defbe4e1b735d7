"""The run state: where a run is (epoch, step, batch, skipped batches) and every random
generator's state, saved and restored by ONE object.

A checkpoint holds the run state's keys at its top level (``epoch``, ``batch``, ``step``,
``skipped``, ``rng``), as every checkpoint format has; :meth:`RunState.state_dict` writes
them and :meth:`RunState.load_state_dict` reads them back, so a resumed run continues at the
same batch of the same epoch with the same random streams.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["RunState", "rng_state", "set_rng_state"]


@dataclass
class RunState:
    """Where a run is.

    Attributes:
        epoch: completed epochs.
        step: optimizer steps taken.
        batch: batches of the current epoch consumed (0 at an epoch's start).
        skipped: batches skipped for a non-finite loss or gradient
            (``train.skip_nonfinite``).
        done: ``train.max_steps`` was reached (not saved: a resumed run recomputes it).

    Example:
        >>> state = RunState(epoch=2, step=46)
        >>> restored = RunState()
        >>> restored.load_state_dict(state.state_dict())
        >>> (restored.epoch, restored.step, restored.batch)
        (2, 46, 0)
    """

    epoch: int = 0
    step: int = 0
    batch: int = 0
    skipped: int = 0
    done: bool = field(default=False, compare=False)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's run-state keys, with every generator's state (``rng``)."""
        return {"epoch": self.epoch, "batch": self.batch, "step": self.step,
                "skipped": self.skipped, "rng": rng_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's run state (and its generators, when it has them)."""
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.batch, self.skipped = int(state.get("batch", 0)), int(state.get("skipped", 0))
        if "rng" in state:
            set_rng_state(state["rng"])


def rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and plain values (a checkpoint holds no objects)."""
    name, key, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"bit_generator": name, "key": torch.from_numpy(key.astype(np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss),
                       "cached_gaussian": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    npy = state["numpy"]
    if isinstance(npy, dict):
        npy = (npy["bit_generator"], npy["key"].numpy().astype(np.uint32), npy["pos"],
               npy["has_gauss"], npy["cached_gaussian"])
    np.random.set_state(npy)  # a tuple: checkpoint format 3
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
