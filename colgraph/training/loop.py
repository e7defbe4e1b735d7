"""The training loop: a page that reads top to bottom.

:func:`train` validates the config, assembles the run (:func:`colgraph.training.assemble`)
and loops: per batch a forward pass, the loss (:func:`colgraph.objectives.total_loss`), a
backward pass, one non-finite check with clipping (:func:`check_and_clip`), the update and
the step hooks; per epoch the metrics row, an evaluation and the epoch hooks. Everything
else (plasticity, sheet growth, progress, logs, connectome snapshots, checkpoints, figures)
is a hook (:mod:`colgraph.training.hooks`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from ..allocator import active_allocator
from ..config import upgrade_config, validate_config
from ..data import iterate_batches
from ..distributed import Distributed
from ..objectives import total_loss
from .assembly import Run, assemble, resolve_device
from .guard import StopRequest, check_and_clip
from .hooks import CheckpointHook, Hook, last_good
from .logs import console_logging, epoch_line, log

__all__ = ["train", "Interrupted"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped the run at a batch boundary, after saving a checkpoint there;
    the message says how to resume. ``reported``: the message was already printed (by rank
    0 of several processes, before any of them exits)."""

    reported = False


def train(cfg: Any, run_dir: str | os.PathLike = ".",
          callbacks: Sequence[Callable[..., None]] = (),
          hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Train the model a config describes; return final metrics and the checkpoint path.

    Args:
        cfg: a composed config (see ``configs/config.yaml`` and :mod:`colgraph.config`).
        run_dir: where ``checkpoint.pt``, ``metrics.csv`` and TensorBoard logs go.
        callbacks: called at the end of every epoch on the main process as
            ``callback(model=..., data=..., epoch=..., run_dir=...)`` (the model in train
            mode; switch modes yourself). ``train.connectome_every=N`` adds
            :class:`colgraph.connectome.ConnectomeSnapshots`.
        hooks: :class:`~colgraph.training.Hook` objects, run after the built-in ones and
            before the checkpoint is written (see :mod:`colgraph.training.hooks`).
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    cfg = upgrade_config(cfg)  # old config keys under their new names (with a warning)
    checked = validate_config(cfg)  # every setting, before any work
    console_logging()
    device = resolve_device(cfg.device)
    # one process unless torchrun started several (on CUDA: the local rank's device)
    ranks = Distributed.from_env(device, checked["parallel"].columns)
    try:
        if ranks.enabled and device.type == "cuda":
            device = ranks.device
        # messages during an epoch are written above the progress bar, not through it; only
        # the logger that prints them (hydra's root handler, or our own): both would say
        # every line twice
        with logging_redirect_tqdm(loggers=[logging.getLogger() if log.propagate else log]):
            run = assemble(cfg, checked, Path(run_dir), device, ranks, callbacks, hooks)
            if device.type == "cpu":  # what memory management costs depends on it
                run.say(f"CPU allocator: {active_allocator()}"
                        + (" (colgraph.use_fast_allocator: tcmalloc is faster)"
                           if active_allocator() == "system" else ""))
            with _catch_sigint(ranks) as interrupt:
                return loop(run, interrupt)
    finally:
        ranks.close()


def loop(run: Run, interrupt: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Train until ``train.epochs`` or ``train.max_steps``; return the final metrics. When
    ``interrupt()`` says so at a batch boundary, save a checkpoint there and raise
    :class:`Interrupted`. With several processes, an ``interrupt`` that is a
    :class:`StopRequest` is agreed on in each step's non-finite check, so every rank stops
    after the same batch."""
    cfg, state, model, ranks = run.cfg, run.state, run.model, run.ranks
    stop = interrupt if isinstance(interrupt, StopRequest) and ranks.enabled else None
    net = ranks.wrap(model)  # the forward pass; everything else reaches into `model`
    while state.epoch < cfg.train.epochs and not state.done:
        model.train()
        if not state.batch:  # else resumed mid-epoch: the sums so far are restored
            state.new_epoch()
        gen = torch.Generator().manual_seed(cfg.train.seed * 100_003 + state.epoch)
        batches = iterate_batches(run.data.x_train, run.data.y_train, cfg.train.batch_size,
                                  shuffle=True, generator=gen, start=state.batch)
        _call(run, "epoch_start")
        for xb, yb in batches:
            if interrupt():
                _stop_interrupted(run)
            state.batch += 1
            if len(xb) < ranks.data_world:  # a last global batch too small to split: dropped
                continue
            xb, yb = ranks.shard(xb, yb)  # this rank's share of the global batch
            xb, yb = xb.to(run.device), yb.to(run.device)
            if run.augment.enabled:
                xb = run.augment(xb)
            _call(run, "before_step")
            res = net(xb, yb)
            loss = total_loss(cfg, res.loss, res.out, model.columnformer.edges, run.radius)
            run.optimizer.zero_grad(set_to_none=True)
            shard = model.columnformer.shard  # a column-sharded sheet: see colgraph.parallel
            shard.loss(loss).backward()
            shard.sync_replicated(model)  # whole parameters: the column group's gradient sum
            bad = check_and_clip(loss, model, cfg.optim.grad_clip, ranks, stop=stop,
                                 shard=shard)
            if bad is not None:
                _skip(run, bad, xb)
                continue
            run.optimizer.step()
            run.scheduler.step()
            state.step += 1
            run.totals.add(res.loss.detach(), {k: v.detach() for k, v in res.stats.items()},
                           len(xb))
            state.done = cfg.train.max_steps is not None and state.step >= cfg.train.max_steps
            if any([bool(h.after_step(run, res)) for h in run.hooks]):
                net = ranks.wrap(model)  # parameters changed shape: wrap (and broadcast) anew
            if state.done:
                break
        if state.batch >= run.steps_per_epoch:  # else stopped mid-epoch: resume from here
            state.epoch, state.batch = state.epoch + 1, 0
        run.metrics = _epoch_metrics(run)
        _call(run, "epoch_end", run.metrics)
        if state.batch:
            break
    if interrupt():
        run.say("Ctrl-C came after the last batch: the run finishes.")
    if "wiring_length" not in run.metrics:
        run.metrics.update(run.evaluate())
    run.metrics["checkpoint"] = str(run.checkpoint_path)
    ranks.barrier()  # rank 0's checkpoint is on disk when any rank returns
    run.say(f"test {model.metric_label} {run.metrics['test_' + model.metric]:.4f} | mean "
            f"attention-weighted wiring length {run.metrics['wiring_length']:.3f} | "
            f"checkpoint {run.checkpoint_path}")
    _call(run, "run_end", run.metrics)
    return run.metrics


def _call(run: Run, event: str, *args: Any) -> None:
    for hook in run.hooks:
        getattr(hook, event)(run, *args)


def _skip(run: Run, reason: str, xb: torch.Tensor) -> None:
    """A batch whose loss or gradient is not finite: stop with the cause, or skip it
    (``train.skip_nonfinite``), unless more than ``train.max_skipped_fraction`` of the
    epoch's batches have been skipped: a run that diverged is stopped, not finished."""
    s, train_cfg = run.state, run.cfg.train
    cause = ("the batch holds non-finite inputs (check the data)"
             if not bool(torch.isfinite(xb).all()) else "Lower optim.lr or set optim.grad_clip")
    if not train_cfg.skip_nonfinite:
        raise FloatingPointError(f"At step {s.step} {reason}: {cause}. "
                                 f"{last_good(run)} train.skip_nonfinite=true skips such "
                                 f"batches instead.")
    s.skipped += 1
    s.epoch_skipped += 1
    run.optimizer.zero_grad(set_to_none=True)
    allowed = train_cfg.max_skipped_fraction * run.steps_per_epoch
    if s.epoch_skipped > allowed:
        raise FloatingPointError(
            f"Stopped at step {s.step}: {s.epoch_skipped} of the first {s.batch} batches of "
            f"epoch {s.epoch + 1} were skipped for a non-finite loss or gradient (the last: "
            f"{reason}), more than train.max_skipped_fraction={train_cfg.max_skipped_fraction} "
            f"of its {run.steps_per_epoch} batches allows: the run is diverging. {cause}. "
            f"{last_good(run)} (train.max_skipped_fraction=1 never stops.)")
    _call(run, "skipped", reason)
    run.say(f"step {s.step}: skipped a batch ({reason}); {s.skipped} skipped so far")


class _CtrlC(StopRequest):
    """Ctrl-C as the loop asks about it (``interrupt()``): pressed in this process, or, with
    several processes, pressed on any rank as of the last step's all-reduce (``agreed``)."""

    def __init__(self, shared: bool) -> None:
        super().__init__()
        self.shared = shared

    def __call__(self) -> bool:
        return self.agreed if self.shared else self.pressed


@contextlib.contextmanager
def _catch_sigint(ranks: Distributed | None = None) -> Iterator[Callable[[], bool]]:
    """Within: Ctrl-C (SIGINT) is noted, and the loop stops at the next batch boundary
    (:func:`_stop_interrupted`), with several processes at the same batch on every rank;
    a second Ctrl-C stops at once. Yields the question "was it pressed?" (a
    :class:`StopRequest`). Only in the main thread (elsewhere Python's default). Under
    torchrun (each worker in its own session), the terminal's Ctrl-C reaches torchrun,
    which passes it on to every worker once."""
    ctrl_c = _CtrlC(ranks is not None and ranks.enabled)
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def note(signum: int, frame: Any) -> None:
        if ctrl_c.pressed:
            raise KeyboardInterrupt
        ctrl_c.pressed = True
        if ranks is None or ranks.is_main:
            log.warning("Ctrl-C: stopping after this batch with a checkpoint (again to stop "
                        "at once, without one).")

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield ctrl_c
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop_interrupted(run: Run) -> None:
    """Save a checkpoint at the current batch boundary and say how to continue. With
    several processes, every rank comes here after the same batch; rank 0 prints the
    message before any rank exits (torchrun stops the others when one exits non-zero)."""
    s = run.state
    next(h for h in run.hooks if isinstance(h, CheckpointHook)).save(run)
    stopped = Interrupted(f"Interrupted (Ctrl-C) at step {s.step}, after batch {s.batch} of "
                          f"{run.steps_per_epoch} of epoch {s.epoch + 1}: saved "
                          f"{run.checkpoint_path}. Resume with\n  {resume_command(run)}")
    if run.ranks.enabled:
        if run.main:
            print(stopped, file=sys.stderr, flush=True)
        stopped.reported = True
        run.ranks.barrier()
    raise stopped


def resume_command(run: Run) -> str:
    """The command line that continues ``run`` in its directory: the run's own overrides
    (under hydra; else "your settings") with ``train.resume`` and ``hydra.run.dir``; for
    several processes, through ``torchrun`` with as many per node."""
    from hydra.core.hydra_config import HydraConfig

    ours = ("train.resume", "hydra.run.dir")
    args = ([a for a in HydraConfig.get().overrides.task
             if a.split("=")[0].lstrip("+~") not in ours]
            if HydraConfig.initialized() else ["<your settings>"])
    args += [f"train.resume={run.checkpoint_path.resolve()}",
             f"hydra.run.dir={run.run_dir.resolve()}"]
    launch = "python -m colgraph train "
    if run.ranks.enabled:
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", run.ranks.world))
        nodes = run.ranks.world // per_node
        launch = (f"torchrun --nproc_per_node={per_node} "
                  + (f"--nnodes={nodes} <your rendezvous settings> " if nodes > 1 else "")
                  + "-m colgraph train ")
    return launch + " ".join(a if a == "<your settings>" else shlex.quote(a) for a in args)


def _epoch_metrics(run: Run) -> dict[str, Any]:
    """The epoch's row (a partial epoch's position is fractional), evaluated when due, with
    its console line."""
    s, cfg = run.state, run.cfg
    metrics = {"epoch": s.epoch + s.batch / run.steps_per_epoch if s.batch else s.epoch,
               "step": s.step, **run.totals.means("train_", run.ranks),
               "lr": run.scheduler.get_last_lr()[0],
               "edges": run.model.columnformer.edges.num_edges, "skipped_batches": s.skipped,
               "time": time.perf_counter() - run.start}
    if s.batch or s.epoch % cfg.train.eval_every == 0 or s.epoch == cfg.train.epochs or s.done:
        metrics.update(run.evaluate())
        head = f"epoch {metrics['epoch']:.2f}" if s.batch else f"epoch {s.epoch:3d}"
        run.say(epoch_line(head, metrics, run.model.metric))  # with or without the bar
    return metrics
