"""Assembling a run: config -> geometry -> data -> task -> optimizer -> schedule -> state
restored from ``train.resume`` / ``train.init_from`` -> hooks. What :func:`assemble` returns
(a :class:`Run`) is everything the loop (:mod:`colgraph.training.loop`) touches.
"""
from __future__ import annotations

import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .. import __version__
from ..checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_NAME, ensure_writable, remove_stale_tmp
from ..config import check_geometry, to_container
from ..data import Augment, DataSplits
from ..distributed import Distributed
from ..geometry import Geometry, build_geometry
from ..parallel import Partition, owned_optimizer_state, owned_state, partition
from ..parallel.checkpoint import (load_run_shards, optimizer_whole_part, save_run_shards,
                                   whole_part)
from ..parallel.state import (owned_edge_rows, renumber_optimizer_state, renumber_state,
                              rows_for)
from ..plasticity import Migration, Plasticity
from ..restore import build_model, load_task_data
from ..tasks import Task
from .evaluation import Totals, evaluate, smoothness_radius
from .hooks import (CheckpointHook, EpochCallbacks, FiguresHook, GrowthHook, Hook, MetricsHook,
                    MigrationHook, PlasticityHook, ProgressHook)
from .logs import log, truncate_log
from .optim import apply_optim_settings, build_optimizer
from .sources import PRETRAINED, check_resume_geometry, init_from, load_sources
from .state import RunState, check_position

__all__ = ["Run", "assemble", "resolve_device", "seed_everything"]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a requested CUDA must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name} was requested but CUDA is not available on this "
                           f"machine. Use device=cpu or device=auto.")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Run:
    """Everything a training run is made of, assembled once (:func:`assemble`).

    The loop reads the config, trains ``model`` (through ``net``: the model itself, or its
    DDP wrapper) with ``optimizer`` / ``scheduler`` and tells ``hooks`` what happened;
    ``state`` says where it is. Hooks reach everything else through this object.
    """

    cfg: Any
    checked: dict[str, Any]  # the config's groups as validated dataclasses
    run_dir: Path
    device: torch.device
    ranks: Distributed
    geometry: Geometry
    data: DataSplits
    augment: Augment
    model: Task
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    plasticity: Plasticity | None
    state: RunState
    steps_per_epoch: int
    radius: float  # of the smoothness loss and measure
    hooks: list[Hook] = field(default_factory=list)
    migration: Migration | None = None  # moves columns (migrate.every > 0)
    # the sheet's column order over the processes that share it (None: one per sheet)
    partition: Partition | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # the last epoch's
    # resumed with the directory's logs: the checkpoint's step, after which they are rewritten
    logs_from: int | None = None
    start: float = field(default_factory=time.perf_counter)
    # the construction geometry never changes (the wiring the run edits is the model's):
    # its checkpoint entries are computed once, not at every save
    _geometry_entries: dict[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._geometry_entries = {"geometry": self.geometry.state_dict(),
                                  "geometry_fingerprint": self.geometry.fingerprint()}

    @property
    def main(self) -> bool:
        """Rank 0: it logs, shows progress and writes every file."""
        return self.ranks.is_main

    @property
    def totals(self) -> Totals:
        """The current epoch's sums so far (part of the run state)."""
        return self.state.totals

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def say(self, message: str) -> None:
        """A message on the console and in ``train.log`` (rank 0 only)."""
        if self.main:
            log.info(message)

    def update_radius(self) -> None:
        """The smoothness radius of the sheet now (the median edge length, unless
        ``smoothness.radius`` fixes it): after columns move."""
        edges = self.model.columnformer.edges
        self.radius = smoothness_radius(self.cfg, edges.length, edges.shard)

    def evaluate(self) -> dict[str, float]:
        """The test metrics over the whole test set (each rank evaluates its share)."""
        return evaluate(self.model, self.data.x_test, self.data.y_test, 256, self.device,
                        self.radius, self.ranks)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint: config (with absolute file paths), geometry, model (its CURRENT
        wiring), optimizer, scheduler, plasticity, the run state, metrics, task metadata.
        A collective (the epoch's sums of every rank): call it on every rank."""
        model, optimizer, shards = self.model.state_dict(), self.optimizer.state_dict(), None
        schedules = {"plasticity": self.plasticity, "migration": self.migration}
        states = {k: s.state_dict() if s is not None else None for k, s in schedules.items()}
        if self.model.columnformer.shard.enabled:  # each process writes its rows (DCP); the
            # file keeps the rest and names the shards
            extra = {f"{k}.attention": s.attention for k, s in schedules.items()
                     if s is not None}
            shards = save_run_shards(self.run_dir, self.state.step, self.model,
                                     self.optimizer, self.ranks.data_rank, extra)
            model = whole_part(self.model, model)
            optimizer = optimizer_whole_part(self.model, self.optimizer)
            for state in states.values():
                if state is not None:
                    state["attention"] = None  # in the shards
        return {"colgraph_version": __version__, "checkpoint_format": CHECKPOINT_FORMAT,
                "config": _absolute_paths(to_container(self.cfg)),
                **self._geometry_entries,
                "partition": None if self.partition is None else self.partition.state_dict(),
                "shards": shards, "model": model, "optimizer": optimizer,
                "scheduler": self.scheduler.state_dict(), **self.state.state_dict(self.ranks),
                **states, "radius": self.radius,
                "metrics": self.metrics, "task": self.model.spec()}


EDGE_LIST_KEY = "columnformer.edges.index"  # the whole sheet's edges in a checkpoint's model
POS_KEY = "columnformer.edges.pos"  # its columns' positions


def assemble(cfg: Any, checked: dict[str, Any], run_dir: Path, device: torch.device,
             ranks: Distributed, callbacks: Sequence[Callable[..., None]] = (),
             hooks: Sequence[Hook] = ()) -> Run:
    """Build the run a validated config describes, restored from ``train.resume`` or
    started from ``train.init_from``; every refusal comes before data is loaded."""
    plasticity_cfg, scale_cfg, train_cfg = checked["plasticity"], checked["scale"], checked["train"]
    if ranks.enabled and cfg.train.batch_size < ranks.data_world:
        raise ValueError(f"train.batch_size={cfg.train.batch_size} is the GLOBAL batch, split "
                         f"over {ranks.data_world} data-parallel groups: give at least one "
                         f"sample per group.")
    if ranks.is_main:
        ensure_writable(run_dir)  # a read-only or full disk is refused before any work
    resume, source = load_sources(cfg)
    if train_cfg.freeze != "none" and plasticity_cfg.enabled:
        raise ValueError("train.freeze=sheet freezes the edge biases that plasticity=... "
                         "edits: use plasticity=none for a probe.")
    seed_everything(cfg.train.seed)

    geometry = build_geometry(cfg.geometry)
    check_geometry(checked, geometry, resumed=resume is not None)  # what this sheet makes unread
    part = split_sheet(geometry, checked["parallel"], resume)
    sheet = geometry if part is None else part.renumber(geometry)  # what the model is built on
    shard = None if part is None else ranks.column_shard(part.bounds, part.order)
    if resume is not None:
        check_resume_geometry(resume, cfg, geometry)
    if scale_cfg.area is not None:
        geometry.area(scale_cfg.area)  # an unknown area fails now, not at the step
    data = load_task_data(cfg)
    augment = Augment(**to_container(cfg.data.augment))
    shared = torch.get_rng_state()
    model = build_model(cfg, sheet, data.sample_shape, data.num_classes, shard).to(device)
    if shard is not None and shard.enabled:  # each process drew its own rows: the stream
        torch.set_rng_state(shared)  # the processes of a sheet share is the same again
    wanted = None if part is None else part.order
    # before the optimizer: edited wiring replaces per-edge parameters
    if resume is not None:  # the whole sheet's edges as saved (before any move)
        saved_edges = resume["model"].get(EDGE_LIST_KEY)
    moved = _restore_model(model, resume, wanted) if resume is not None else None
    if source is not None:
        _restore_model(model, source, wanted, init=True)
    if train_cfg.freeze == "sheet":  # a probe: only the readout learns
        for name, p in model.named_parameters():
            p.requires_grad_(not name.startswith(PRETRAINED))
    steps_per_epoch = math.ceil(len(data.x_train) / cfg.train.batch_size)
    if resume is not None:  # its counters, before they index anything
        check_position(resume, steps_per_epoch, cfg.train.epochs, len(data.x_train),
                       ("loss", *model.stats))
    optimizer, scheduler = build_optimizer(model, cfg, steps_per_epoch)
    if resume is not None:
        _restore_optimizer(model, optimizer, resume, moved)
        scheduler.load_state_dict(resume["scheduler"])
        apply_optim_settings(model, optimizer, scheduler, cfg, resume["config"]["optim"],
                             resume["step"])
        batch = resume.get("batch", 0)
        if batch and resume["config"]["train"]["batch_size"] != cfg.train.batch_size:
            raise ValueError(f"Cannot resume {resume['path']} mid-epoch (after batch {batch} "
                             f"of epoch {resume['epoch'] + 1}) with another train.batch_size "
                             f"({cfg.train.batch_size}; the run used "
                             f"{resume['config']['train']['batch_size']}): keep its batch size.")
    plasticity = (Plasticity(model, plasticity_cfg, steps_per_epoch * cfg.train.epochs,
                             optimizer, ranks) if plasticity_cfg.enabled else None)
    migrate_cfg = checked["migrate"]
    migration = (Migration(model, migrate_cfg, steps_per_epoch * cfg.train.epochs, ranks)
                 if migrate_cfg.enabled else None)
    state = RunState()
    if resume is not None:
        _restore_schedules(model, resume, {"plasticity": plasticity, "migration": migration},
                           saved_edges, moved)
        state.load_state_dict(resume, ranks.is_main)  # position, sums, random generators
        if ranks.is_main:
            log.info(f"Resumed from {resume['path']} at epoch {state.epoch}, step "
                     f"{state.step} ({model.columnformer.edges.num_edges} edges).")
    state.done = cfg.train.max_steps is not None and state.step >= cfg.train.max_steps
    ranks.reseed(cfg.train.seed, state.step)  # each rank its own dropout / augmentation masks
    run = Run(cfg=cfg, checked=checked, run_dir=run_dir, device=device, ranks=ranks,
              geometry=geometry, data=data, augment=augment, model=model,
              optimizer=optimizer, scheduler=scheduler, plasticity=plasticity, state=state,
              steps_per_epoch=steps_per_epoch, partition=part, migration=migration,
              radius=smoothness_radius(cfg, model.columnformer.edge_length,
                                       model.columnformer.shard))
    if resume is not None and resume.get("radius") is not None:  # the run's own, exactly
        run.radius = float(resume["radius"])
    if ranks.is_main:
        if _link_runs(run_dir, resume, run.say):  # the directory's logs are this run's
            _truncate_logs(run, resume)
            run.logs_from = resume["step"]
    run.hooks = default_hooks(run, callbacks, hooks)
    if ranks.is_main and remove_stale_tmp(run.checkpoint_path):
        run.say(f"Removed {run.checkpoint_path}.tmp, a partial checkpoint left by a crash "
                f"mid-write.")
    n_params = sum(p.numel() for p in model.parameters())
    run.say(f"{geometry} | {n_params / 1e6:.2f}M parameters | device {device}"
            + (f" | {ranks.world} processes" if ranks.enabled else ""))
    run.start = time.perf_counter()
    return run


def _restore_schedules(model: Task, resume: dict[str, Any], schedules: dict[str, Any],
                       saved_edges: torch.Tensor, moved: Any) -> None:
    """Load each schedule's checkpointed state (plasticity, migration: their running
    attention from the shards of a column-sharded run, else the whole sheet's rows in the
    checkpoint's column order)."""
    for name, schedule in schedules.items():
        if schedule is None or resume.get(name) is None:
            continue
        stats = resume[name]
        if resume.get("shards") is not None:  # its running attention: this process's
            attention = load_run_shards(resume, model, extra=True)[f"{name}.attention"]
        else:  # a whole sheet's, in the checkpoint's column order
            attention = owned_edge_rows(model, stats["attention"], saved_edges,
                                        None if moved is None else moved[0])
        schedule.load_state_dict({**stats, "attention": attention})


def _restore_model(model: Task, checkpoint: dict[str, Any], wanted: torch.Tensor | None,
                   init: bool = False) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Load a checkpoint's weights (``init``: its encoder and sheet, ``train.init_from``)
    into ``model``, built in the column order ``wanted``: this process's rows on a
    column-sharded sheet, from the checkpoint's shards or from its whole sheet (moved into
    ``wanted`` order if it was saved in another). Returns what the optimizer's moments
    need to move the same way: ``(row of each column, the saved edge list)``, or ``None``."""
    what = "train.init_from" if init else "train.resume"
    if checkpoint.get("shards") is not None:  # a column-sharded run's checkpoint
        if rows_for(_saved_order(checkpoint), wanted) is not None:
            raise ValueError(f"{what}={checkpoint['path']} is a column-sharded checkpoint in "
                             f"another column order than this run's sheet; it loads only "
                             f"in its own order (resume it, or load it with load_model).")
        keep = (lambda k: k.startswith(PRETRAINED)) if init else (lambda k: True)
        model.load_state_dict({k: v for k, v in checkpoint["model"].items() if keep(k)},
                              strict=False)
        load_run_shards(checkpoint, model)
        return None
    state, moved = checkpoint["model"], rows_for(_saved_order(checkpoint), wanted)
    if moved is not None:  # e.g. a run of one process per sheet, resumed on a split sheet
        edges = state[EDGE_LIST_KEY]
        state = renumber_state(model, state, moved)
    if init:
        init_from(model, {**checkpoint, "model": owned_state(model, state)})
    else:  # the CURRENT wiring, however it was edited
        model.load_state_dict(owned_state(model, state))
        checkpoint["model"] = state  # its edge list gives the optimizer's edge rows
    return None if moved is None else (moved, edges)


def _restore_optimizer(model: Task, optimizer: torch.optim.Optimizer,
                       resume: dict[str, Any], moved: tuple | None) -> None:
    """The resumed run's optimizer state: this process's rows of its moments."""
    if resume.get("shards") is not None:
        optimizer.load_state_dict(resume["optimizer"])  # steps, whole parameters' moments
        load_run_shards(resume, model, optimizer)  # the rows' moments
        return
    osd = resume["optimizer"]
    if moved is not None:
        osd = renumber_optimizer_state(model, optimizer, osd, moved[1], moved[0])
    optimizer.load_state_dict(owned_optimizer_state(model, optimizer, osd,
                                                    resume["model"][EDGE_LIST_KEY]))


def _saved_order(checkpoint: dict[str, Any]) -> torch.Tensor | None:
    stored = checkpoint.get("partition")
    return None if stored is None else Partition.from_state_dict(stored).order


def split_sheet(geometry: Geometry, parallel: Any, resume: dict[str, Any] | None
                ) -> Partition | None:
    """How the sheet's columns are ordered and split over the ``parallel.columns``
    processes that share it: a resumed run keeps its checkpoint's column order (cut anew for
    this run's number of processes); a new one partitions the sheet
    (``parallel.partition``); ``None``: one process per sheet, nothing renumbered."""
    stored = None if resume is None else resume.get("partition")
    grown = None if resume is None else resume["model"].get(POS_KEY)
    if parallel.columns > 1 and grown is not None and grown.size(0) != geometry.num_columns:
        raise ValueError(f"{resume['path']} holds a sheet grown to {grown.size(0)} columns "
                         f"(scale.*); the partition is made from the {geometry.num_columns} "
                         f"columns the config builds, so it cannot resume on a column-sharded "
                         f"sheet. Resume it with parallel.columns=1.")
    if stored is not None:
        kept = Partition.from_state_dict(stored)
        if parallel.columns > 1 and parallel.partition != kept.method:
            raise ValueError(f"parallel.partition={parallel.partition} cannot take effect: the "
                             f"resumed run keeps its checkpoint's column order "
                             f"({kept.method}), cut anew for {parallel.columns} processes. "
                             f"Drop parallel.partition (or set it to {kept.method}).")
        return kept.recut(geometry, parallel.columns)
    if parallel.columns == 1:
        return None
    return partition(geometry, parallel.columns, parallel.partition)


def default_hooks(run: Run, callbacks: Sequence[Callable[..., None]] = (),
                  hooks: Sequence[Hook] = ()) -> list[Hook]:
    """The hooks a config asks for, in the order they run: logging, plasticity, growth,
    progress, epoch callbacks (connectome snapshots), the caller's ``hooks``, checkpoints,
    figures."""
    cfg = run.cfg
    callbacks = list(callbacks)
    if cfg.train.connectome_every:
        from ..connectome import ConnectomeSnapshots

        callbacks.append(ConnectomeSnapshots(cfg.train.connectome_every))
    out: list[Hook] = [MetricsHook(run)]
    if run.plasticity is not None:
        out.append(PlasticityHook(run.plasticity))
    if run.migration is not None:
        out.append(MigrationHook(run.migration))
    if run.checked["scale"].area is not None:
        out.append(GrowthHook(run.checked["scale"], cfg.geometry.wiring))
    out.append(ProgressHook(enabled=cfg.train.progress and run.main))
    if callbacks:
        out.append(EpochCallbacks(callbacks))
    return [*out, *hooks, CheckpointHook(cfg.train.checkpoint_every), FiguresHook()]


def _absolute_paths(config: dict[str, Any]) -> dict[str, Any]:
    """The config with its file paths made absolute, so that a checkpoint finds its data
    and geometry files from any working directory (``load_model``, ``analyze.py``)."""
    for group, key in (("data", "path"), ("geometry", "path"), ("geometry", "coords")):
        value = config.get(group, {}).get(key)
        if value:
            config[group][key] = str(Path(value).expanduser().resolve())
    return config


def _truncate_logs(run: Run, resume: dict[str, Any]) -> None:
    """The run directory's logs as if the run had never stopped: rows written after the
    checkpoint (by a run killed before its next checkpoint) go, and so does a partial-epoch
    row at the checkpoint's own position (where ``train.max_steps`` stopped the run), which
    the epoch's full row will replace (the saved sums carry its batches)."""
    step, epoch, batch = resume["step"], resume["epoch"], resume.get("batch", 0)
    position = epoch + batch / run.steps_per_epoch if batch else epoch

    def before(row: dict[str, str]) -> bool:
        if row.get("step") and int(float(row["step"])) > step:
            return False
        at = float(row["epoch"])
        return at < position or (at == position and not batch)

    dropped = {name: truncate_log(run.run_dir / name, keep)
               for name, keep in (("metrics.csv", before),
                                  ("plasticity.csv", lambda r: int(r["step"]) <= step))}
    if any(dropped.values()):
        run.say("Dropped the log rows the resumed run writes anew (" + ", ".join(
            f"{n} from {name}" for name, n in dropped.items() if n) + "): the logs continue "
            f"from step {step} as if the run had never stopped.")


def _link_runs(run_dir: Path, resume: dict[str, Any] | None, say: Any) -> bool:
    """Keep a run directory's records one run's: resuming into a NEW directory starts its
    ``metrics.csv`` / ``plasticity.csv`` with the earlier run's rows and notes where it came
    from (``resumed_from.txt``); a directory that already holds another run's metrics is
    appended to only with a warning. Returns whether the directory's logs continue the
    resumed run's (resumed in place, or copied here)."""
    import shutil

    source = Path(resume["path"]).parent if resume is not None else None
    same = source is not None and source.resolve() == run_dir.resolve()
    foreign = (run_dir / "metrics.csv").exists() and not same
    if foreign:
        warnings.warn(f"{run_dir} already holds metrics.csv of another run: this run appends "
                      f"its rows to it. Use a fresh run directory (hydra.run.dir=...) to keep "
                      f"runs apart.", stacklevel=4)
    if source is not None and not same:
        for name in ("metrics.csv", "plasticity.csv"):
            if (source / name).is_file() and not (run_dir / name).exists():
                shutil.copyfile(source / name, run_dir / name)
        (run_dir / "resumed_from.txt").write_text(
            f"{resume['path']}\nstep {resume['step']}, epoch {resume['epoch']}\n")
        say(f"Continuing {source} in {run_dir} (its metrics so far copied; resumed_from.txt).")
    return source is not None and not foreign
