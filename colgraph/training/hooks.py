"""Step and epoch hooks: everything a run does besides forward, backward and the update.

The contract (:class:`Hook`): the loop calls, in the order of ``run.hooks``,

* ``epoch_start(run)`` before an epoch's first batch (also when resuming mid-epoch);
* ``before_step(run)`` before the forward pass of a batch;
* ``after_step(run, result)`` after the optimizer step (``run.state.step`` already counts
  it; ``result`` is the task's :class:`~colgraph.tasks.TaskOutput`). Return ``True`` when
  the hook changed the model's parameter SHAPES (edges pruned or grown, columns added): the
  loop then re-wraps the model for data parallelism, in one place, after all hooks ran;
* ``skipped(run, reason)`` instead of ``after_step`` when the batch was skipped for a
  non-finite loss or gradient (``train.skip_nonfinite``);
* ``epoch_end(run, metrics)`` after an epoch (``run.state.batch == 0``), or after the part
  of one before ``train.max_steps`` stopped the run (``run.state.batch > 0``), with the
  epoch's metrics row (evaluated metrics included when the epoch was evaluated);
* ``run_end(run, metrics)`` once, with the final metrics.

Every method is optional (the base class's do nothing). A hook runs on every process; a
hook that writes files checks ``run.main``.

Example: stop a run when the training loss is low enough::

    class EarlyStop(Hook):
        def epoch_end(self, run, metrics):
            if metrics.get("train_loss", 1.0) < 1e-3:
                run.state.done = True

    train(cfg, run_dir, hooks=[EarlyStop()])
"""
from __future__ import annotations

import torch

import warnings
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..checkpoint import first_nonfinite, save_checkpoint
from ..geometry import build_wiring
from ..plasticity import Migration, Plasticity, add_columns, refine_grid
from .logs import CsvLog, TensorBoard, metrics_schema

if TYPE_CHECKING:
    from ..tasks import TaskOutput
    from .assembly import Run

__all__ = ["Hook", "MetricsHook", "PlasticityHook", "MigrationHook", "GrowthHook", "ProgressHook",
           "EpochCallbacks", "CheckpointHook", "FiguresHook"]


class Hook:
    """Base class of step / epoch hooks (see the module docstring for the contract)."""

    def epoch_start(self, run: "Run") -> None:
        pass

    def before_step(self, run: "Run") -> None:
        pass

    def after_step(self, run: "Run", result: "TaskOutput") -> bool | None:
        pass

    def skipped(self, run: "Run", reason: str) -> None:
        pass

    def epoch_end(self, run: "Run", metrics: dict[str, Any]) -> None:
        pass

    def run_end(self, run: "Run", metrics: dict[str, Any]) -> None:
        pass


class MetricsHook(Hook):
    """``metrics.csv`` (one row per epoch, fixed columns: :func:`metrics_schema`),
    ``plasticity.csv`` (rows of :meth:`log`) and TensorBoard (the same rows and the
    per-step loss ``train/loss_step``), on rank 0. Every point is logged at the step count
    after the update it follows (the loss of update ``s`` at step ``s``), so a run resumed
    from a checkpoint at step ``k`` rewrites TensorBoard from step ``k + 1``."""

    def __init__(self, run: "Run") -> None:
        self.enabled = run.main
        self.tb = TensorBoard(run.run_dir, run.cfg.train.tensorboard and run.main,
                              None if run.logs_from is None else run.logs_from + 1)
        self.csv = {"metrics": CsvLog(run.run_dir / "metrics.csv",
                                      metrics_schema(run.model.stats),
                                      run.checkpoint_path)} if run.main else {}

    def log(self, run: "Run", name: str, row: dict[str, Any]) -> None:
        """``row`` to ``RUN_DIR/<name>.csv`` and TensorBoard (``<name>/<key>``)."""
        if not self.enabled:
            return
        if name not in self.csv:
            self.csv[name] = CsvLog(run.run_dir / f"{name}.csv",
                                    checkpoint=run.checkpoint_path)
        self.csv[name].append(row)
        self.tb.row(row, run.state.step, "" if name == "metrics" else f"{name}/")

    def after_step(self, run: "Run", result: "TaskOutput") -> None:
        self.tb.scalar("train/loss_step", result.loss.detach(), run.state.step)

    def epoch_end(self, run: "Run", metrics: dict[str, Any]) -> None:
        self.log(run, "metrics", metrics)

    def run_end(self, run: "Run", metrics: dict[str, Any]) -> None:
        self.tb.close()


def _metrics_hook(run: "Run") -> MetricsHook:
    return next(h for h in run.hooks if isinstance(h, MetricsHook))


class PlasticityHook(Hook):
    """Prune and grow edges on the plasticity schedule (:class:`colgraph.plasticity.Plasticity`):
    records what gradient growth needs on the steps before an update, feeds it the batch's
    attention, logs each update to ``plasticity.csv``."""

    def __init__(self, plasticity: Plasticity) -> None:
        self.plasticity, self.recording = plasticity, False

    def before_step(self, run: "Run") -> None:
        self.recording = self.plasticity.wants_record(run.state.step + 1)
        if self.recording:
            self.plasticity.start_recording()

    def skipped(self, run: "Run", reason: str) -> None:
        if self.recording:
            self.plasticity.stop_recording()

    def after_step(self, run: "Run", result: "TaskOutput") -> bool:
        records = self.plasticity.stop_recording() if self.recording else None
        self.plasticity.observe(result.out.attention)
        update = self.plasticity.maybe_update(run.state.step, records)
        if update is None:
            return False
        _metrics_hook(run).log(run, "plasticity", {"epoch": run.state.epoch, **update})
        return True  # the per-edge parameters changed shape


class MigrationHook(Hook):
    """Move columns on the migration schedule (:class:`colgraph.plasticity.Migration`):
    feeds it the batch's attention, logs each migration to ``migration.csv`` and the
    console, and updates what depends on positions outside the model (the smoothness
    radius, unless ``smoothness.radius`` fixes it)."""

    def __init__(self, migration: Migration) -> None:
        self.migration = migration

    def after_step(self, run: "Run", result: "TaskOutput") -> None:
        self.migration.observe(result.out.attention)
        update = self.migration.maybe_update(run.state.step)
        if update is None:
            return
        run.update_radius()
        _metrics_hook(run).log(run, "migration", {"epoch": run.state.epoch, **update})
        run.say(f"step {run.state.step}: {100 * update['moved_fraction']:.1f}% of columns "
                f"moved (mean {update['mean_displacement']:.3g}); attention-weighted length "
                f"{update['wire_before']:.4g} -> {update['wire_after']:.4g}")


class GrowthHook(Hook):
    """Grow the sheet once (``scale.*``): refine the lattice of ``scale.area`` by
    ``scale.factor`` after step ``scale.at_step``, wiring the new columns with
    ``geometry.wiring``."""

    def __init__(self, scale: Any, wiring: Any) -> None:
        self.scale, self.wiring = scale, wiring

    def after_step(self, run: "Run", result: "TaskOutput") -> bool:
        s = self.scale
        if run.state.step != s.at_step:
            return False
        grown = add_columns(run.model, refine_grid(run.model, s.area, s.factor),
                            wiring=build_wiring(self.wiring), optimizer=run.optimizer)
        run.say(f"step {run.state.step}: sheet grew to {grown['columns']} columns "
                f"(+{grown['added_columns']} in {s.area}, +{grown['added_edges']} edges)")
        return True  # new per-column parameters (rank 0's everywhere after the re-wrap)


class ProgressHook(Hook):
    """A progress bar per epoch with the running training statistics (and the number of
    edges, when plasticity edits them)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled, self.bar = enabled, None

    def epoch_start(self, run: "Run") -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=run.steps_per_epoch, initial=run.state.batch,
                        desc=f"epoch {run.state.epoch + 1}/{run.cfg.train.epochs}",
                        disable=not self.enabled, leave=False)

    def after_step(self, run: "Run", result: "TaskOutput") -> None:
        self.bar.update(1)
        self.bar.set_postfix({k[6:]: f"{v:.3f}" for k, v in run.totals.means("train_").items()},
                             **({"edges": run.model.columnformer.edges.num_edges}
                                if run.plasticity is not None else {}))

    def skipped(self, run: "Run", reason: str) -> None:
        self.bar.update(1)

    def epoch_end(self, run: "Run", metrics: dict[str, Any]) -> None:
        self.bar.close()


class EpochCallbacks(Hook):
    """Plain functions called at the end of every complete epoch on rank 0 as
    ``callback(model=..., data=..., epoch=..., run_dir=...)`` (the model in train mode),
    e.g. :class:`colgraph.connectome.ConnectomeSnapshots`. On a column-sharded sheet a
    callback with ``collective = True`` is called on every process of the first data group
    (its forward passes are collectives; it writes from the first)."""

    def __init__(self, callbacks: Sequence[Callable[..., None]]) -> None:
        self.callbacks = list(callbacks)

    def epoch_end(self, run: "Run", metrics: dict[str, Any]) -> None:
        if run.state.batch:
            return
        sharded = run.model.columnformer.shard.enabled and run.ranks.data_rank == 0
        for callback in self.callbacks:
            if run.main or (sharded and getattr(callback, "collective", False)):
                callback(model=run.model, data=run.data, epoch=run.state.epoch,
                         run_dir=run.run_dir)


class CheckpointHook(Hook):
    """The run's checkpoint (:meth:`Run.state_dict`), written atomically by rank 0 at
    every epoch's end, where ``train.max_steps`` stops the run, and every ``every`` steps
    within an epoch (``train.checkpoint_every``; 0: never within). A model holding a
    non-finite tensor is never written: the last good checkpoint stays. :meth:`save` runs
    on every rank (the epoch's sums in the run state are reduced over the ranks)."""

    def __init__(self, every: int = 0) -> None:
        self.every = every

    def after_step(self, run: "Run", result: "TaskOutput") -> None:
        s = run.state
        if (self.every and s.step % self.every == 0 and not s.done
                and s.batch < run.steps_per_epoch):
            self.save(run)

    def epoch_end(self, run: "Run", metrics: dict[str, Any]) -> None:
        self.save(run)

    def save(self, run: "Run") -> None:
        bad = first_nonfinite(run.model.state_dict().items())
        if run.model.columnformer.shard.enabled:  # processes of a sheet hold different rows
            elsewhere = run.ranks.mean_tensor(torch.tensor([float(bad is not None)]))
            if bad is None and float(elsewhere) > 0:
                bad = "of another process's columns (non-finite values)"
        if bad is not None:  # on every rank: the same parameters, or agreed above
            raise FloatingPointError(
                f"Not writing a checkpoint at step {run.state.step}: parameter {bad}. "
                f"{last_good(run)} Lower optim.lr or set optim.grad_clip.")
        state = run.state_dict()  # on every rank: the epoch's sums are reduced over them
        if run.main:
            save_checkpoint(run.checkpoint_path, state)
            if state.get("shards") is not None:  # the shards the new file names stay
                from ..parallel.checkpoint import remove_old_shards

                remove_old_shards(run.run_dir, keep=state["shards"]["dir"])


def last_good(run: "Run") -> str:
    """Where the last good checkpoint is, for error messages."""
    return (f"The last good checkpoint is {run.checkpoint_path}."
            if run.checkpoint_path.exists() else "No checkpoint was written yet.")


class FiguresHook(Hook):
    """``training.png`` (the curves of ``metrics.csv``) at the end of the run; a figure
    never costs the run."""

    def run_end(self, run: "Run", metrics: dict[str, Any]) -> None:
        if not run.main:
            return
        from ..curves import plot_training

        try:
            plot_training(run.run_dir, run.run_dir / "training.png")
        except Exception as e:  # noqa: BLE001 (matplotlib backends, fonts, disk)
            warnings.warn(f"Could not draw {run.run_dir / 'training.png'}: {e}")
