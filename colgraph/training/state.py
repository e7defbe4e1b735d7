"""The run state: where a run is (epoch, step, batch, skipped batches), the current
epoch's sums so far and every random generator's state, saved and restored by ONE object.

A checkpoint holds the run state's keys at its top level (``epoch``, ``batch``, ``step``,
``skipped``, ``totals``, ``rng``), as every checkpoint format has; :meth:`RunState.state_dict`
writes them and :meth:`RunState.load_state_dict` checks and reads them back, so a resumed
run continues at the same batch of the same epoch with the same random streams, and the
epoch's training statistics cover the batches before the stop as well.
"""
from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..distributed import Distributed
from .evaluation import Totals

__all__ = ["RunState", "check_position", "rng_state", "set_rng_state"]


@dataclass
class RunState:
    """Where a run is.

    Attributes:
        epoch: completed epochs.
        step: optimizer steps taken.
        batch: batches of the current epoch consumed (0 at an epoch's start).
        skipped: batches skipped for a non-finite loss or gradient
            (``train.skip_nonfinite``).
        totals: the current epoch's sums so far (the loop adds each batch; a checkpoint
            holds them summed over the ranks).
        epoch_skipped: batches of the current epoch skipped so far.
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
    totals: Totals = field(default_factory=Totals, compare=False)
    epoch_skipped: int = 0
    done: bool = field(default=False, compare=False)

    def new_epoch(self) -> None:
        """Start the sums (and the skip count) of the next epoch."""
        self.totals, self.epoch_skipped = Totals(), 0

    def state_dict(self, ranks: Distributed | None = None) -> dict[str, Any]:
        """The checkpoint's run-state keys, with every generator's state (``rng``). With
        ``ranks``, the epoch's sums are those of every rank (a collective: call it on every
        rank)."""
        return {"epoch": self.epoch, "batch": self.batch, "step": self.step,
                "skipped": self.skipped, "rng": rng_state(),
                "totals": {**self.totals.reduced(ranks).state_dict(),
                           "skipped": self.epoch_skipped}}

    def load_state_dict(self, state: dict[str, Any], main: bool = True) -> None:
        """Continue from a checkpoint's run state (and its generators, when it has them).
        The position is checked (:func:`check_position`; the bounds that need the data are
        checked by the caller). A checkpoint from before the epoch's sums were saved
        resumes with sums over the batches after the resume point only, said once."""
        check_position(state)
        self.epoch, self.step = state["epoch"], state["step"]
        self.batch, self.skipped = state.get("batch", 0), state.get("skipped", 0)
        self.new_epoch()
        if "totals" in state:
            self.totals.load_state_dict(state["totals"], main)
            self.epoch_skipped = state["totals"].get("skipped", 0)
        elif self.batch:
            warnings.warn(f"The checkpoint {state.get('path', '')} predates saved epoch "
                          f"sums: epoch {self.epoch + 1}'s training statistics in "
                          f"metrics.csv will cover only the batches after batch "
                          f"{self.batch}.", stacklevel=2)
        if "rng" in state:
            set_rng_state(state["rng"])


def check_position(state: dict[str, Any], steps_per_epoch: int | None = None,
                   epochs: int | None = None, samples: int | None = None,
                   keys: tuple[str, ...] | None = None) -> None:
    """Refuse a checkpoint whose counters cannot describe a run: ``epoch``, ``step``,
    ``batch``, ``skipped`` must be integers >= 0, ``batch`` at most ``steps_per_epoch``,
    ``epoch`` at most ``epochs`` (``train.epochs``), ``step`` and ``skipped`` at most one per
    training sample and epoch begun (``samples``); the saved sums finite, of ``keys`` (the
    loss and the task's statistics) only."""
    where = state.get("path", "the checkpoint")

    def bad(key: Any, value: Any, expected: str, fix: str = "") -> ValueError:
        return ValueError(f"The checkpoint's {key}={value!r} is invalid: expected {expected}. "
                          f"{where} was edited or damaged{fix}; resume from another "
                          f"checkpoint or start a new run.")

    for key in ("epoch", "step", "batch", "skipped"):
        if key not in state and key in ("epoch", "step"):
            raise bad(key, None, "an integer >= 0 (the key is missing)")
        value = state.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad(key, value, "an integer >= 0")
    if steps_per_epoch is not None and state.get("batch", 0) > steps_per_epoch:
        raise bad("batch", state["batch"], f"at most {steps_per_epoch}, the batches of an "
                  f"epoch")
    if epochs is not None and state["epoch"] == epochs and state.get("batch", 0):
        raise bad("batch", state["batch"], f"0 at epoch {epochs}, the end of the run")
    if epochs is not None and state["epoch"] > epochs:
        raise bad("epoch", state["epoch"], f"at most train.epochs={epochs}",
                  f", or ran longer than train.epochs (set train.epochs >= "
                  f"{state['epoch']} to continue it)")
    if samples is not None:
        most = (state["epoch"] + 1) * samples  # at most one step per sample and epoch
        for key in ("step", "skipped"):
            if state.get(key, 0) > most:
                raise bad(key, state[key], f"at most {most} after {state['epoch']} epochs "
                          f"of {samples} samples")
    totals = state.get("totals")
    if totals is None:
        return
    sums, n, skipped = (totals.get(k) if isinstance(totals, dict) else None
                        for k in ("sums", "n", "skipped"))
    if (not isinstance(sums, dict) or not all(isinstance(k, str) and isinstance(v, float)
                                              and math.isfinite(v) for k, v in sums.items())):
        raise bad("totals.sums", sums, "a dict of finite floats (the epoch's sums)")
    if keys is not None and not set(sums) <= set(keys):
        raise bad("totals.sums", sorted(sums), f"sums of {', '.join(keys)} only")
    for key, value in (("n", n), ("skipped", skipped)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad(f"totals.{key}", value, "an integer >= 0")
    if samples is not None and n > samples:
        raise bad("totals.n", n, f"at most {samples}, the samples of an epoch")
    if skipped > state.get("batch", 0):
        raise bad("totals.skipped", skipped, f"at most batch={state.get('batch', 0)}")


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
