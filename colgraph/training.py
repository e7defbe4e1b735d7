"""Training entry point: a plain function of the config (``scripts/train.py`` is a shell).

Builds geometry -> data -> task (encoder + Columnformer + readout, see
:mod:`colgraph.tasks`), trains with AdamW (weight-decay groups by parameter name),
warmup + cosine schedule, gradient clipping, optional plasticity (prune / grow edges on a
schedule), per-epoch evaluation, CSV (+ TensorBoard) metrics and an atomically written
checkpoint holding everything needed to resume or analyse the run: config, geometry, the
CURRENT wiring (in the model's state), optimizer, scheduler, plasticity state, epoch, step,
RNG state.
"""
from __future__ import annotations

import csv
import logging
import math
import os
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from . import __version__
from .checkpoint import (CHECKPOINT_FORMAT, CHECKPOINT_NAME, first_nonfinite, load_checkpoint,
                         remove_stale_tmp, save_checkpoint)
from .config import to_container, validate_config
from .data import Augment, iterate_batches
from .distributed import Distributed
from .geometry import Geometry, build_geometry, build_wiring
from .model import ColumnformerConfig
from .objectives import smoothness_loss, topographic_smoothness, wiring_cost, wiring_length
from .plasticity import Plasticity, add_columns, refine_grid
from .restore import EXPORT_KEYS, build_model, export_model, load_model, load_task_data
from .tasks import TASKS, Task, task_class

__all__ = ["train", "export_model", "EXPORT_KEYS", "build_model", "load_task_data", "resolve_device", "param_groups", "load_checkpoint",
           "save_checkpoint", "load_model", "evaluate", "CHECKPOINT_NAME"]

NO_DECAY = ("bias", "edge_bias", "column_embed", "step_embed")


log = logging.getLogger("colgraph")  # hydra's job logging puts it in <run dir>/train.log


class _Stdout(logging.StreamHandler):
    """A handler on whatever ``sys.stdout`` is when a record arrives (pytest, notebooks and
    redirections replace it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns one: ignored
        pass


def _console_logging() -> None:
    """Under a hydra job, colgraph's messages go through hydra's handlers (console and
    ``train.log``); called from Python, they are plain lines on stdout."""
    from hydra.core.hydra_config import HydraConfig

    ours = [h for h in log.handlers if isinstance(h, _Stdout)]
    if HydraConfig.initialized():
        for h in ours:
            log.removeHandler(h)
        log.propagate = True
    elif not ours:
        log.addHandler(_Stdout())
        log.propagate = False
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


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


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups by parameter NAME: decay projection weights only.

    Biases, norm scales, column / step embeddings and the per-edge bias (the learned
    connectivity) are not decayed, whatever their number of dimensions.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        last, parent = name.rsplit(".", 1)[-1], name.rsplit(".", 1)[0] if "." in name else ""
        skip = last in NO_DECAY or "norm" in parent.rsplit(".", 1)[-1]
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(total_steps: int, warmup_steps: int, min_ratio: float):
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


class _Totals:
    """Sample-weighted sums of a task's loss and statistics over batches."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, loss: torch.Tensor, stats: dict[str, torch.Tensor], n: int,
            **extra: float) -> None:
        for k, v in {"loss": float(loss) * n, **{k: float(v) for k, v in stats.items()},
                     **{k: v * n for k, v in extra.items()}}.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += n

    def means(self, prefix: str, ranks: Distributed | None = None) -> dict[str, float]:
        """Means over the batches seen (on every rank, with ``ranks``)."""
        sums, n = self.sums, self.n
        if ranks is not None and ranks.enabled:
            total = ranks.sum({**sums, "__n": n})
            n = total.pop("__n")
            sums = total
        return {f"{prefix}{k}": v / max(n, 1) for k, v in sums.items()}


def smoothness_radius(cfg: Any, edge_length: torch.Tensor) -> float:
    """``smoothness.radius``, or by default the median edge length of the sheet."""
    r = cfg.smoothness.radius
    return float(r) if r is not None else float(edge_length.median())


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
    totals = _Totals()
    gen = torch.Generator().manual_seed(0)  # the same random pairs every evaluation
    for xb, yb in iterate_batches(x, y, batch_size):
        xb, yb = xb.to(device), yb.to(device)
        res = model(xb, yb)
        act = res.out.activity
        topo = topographic_smoothness(res.out.state, edges.index, edges.length, edges.pos,
                                      radius, generator=gen, period=edges.period,
                                      metric=edges.metric)
        totals.add(res.loss, res.stats, len(xb), wiring_length=float(
            wiring_length(res.out.attention, cf.edge_index, cf.edge_length)),
            smoothness=topo["smoothness"], silent=float(act.silent.mean()),
            active_columns=float(act.active.mean()))
    m = totals.means("test_", ranks)
    extra = ("test_loss", "test_wiring_length", "test_smoothness", "test_silent",
             "test_active_columns")
    return {**{k: v for k, v in m.items() if k not in extra}, "test_loss": m["test_loss"],
            "wiring_length": m["test_wiring_length"], "smoothness": m["test_smoothness"],
            "silent": m["test_silent"], "active_columns": m["test_active_columns"]}


# ---------------------------------------------------------------------- checkpoints
PRETRAINED = ("encoder.", "columnformer.")  # what train.init_from carries over / freeze fixes


def check_init_source(source: dict[str, Any], cfg: Any) -> None:
    """Refuse a ``train.init_from`` checkpoint whose samples or sheet do not fit ``cfg``."""
    spec = source["task"]
    path = source["path"]
    want = task_class(cfg.task.name)
    have = task_class(spec["name"]) if spec["name"] in TASKS else None
    if have is None or have.modality != want.modality:
        raise ValueError(f"train.init_from={path} holds a '{spec['name']}' model, whose "
                         f"encoder reads {have.modality if have else 'unknown'} samples, but "
                         f"task={cfg.task.name} reads {want.modality}s. Start from a run of a "
                         f"{want.modality} task.")
    differ = architecture_differences(source["config"], cfg, task=False)
    if differ:
        raise ValueError(f"train.init_from={path} was built with other model settings: "
                         f"{differ}. Use the pre-training run's model settings.")
    geometry = build_geometry(cfg.geometry)
    if source["geometry_fingerprint"] != geometry.fingerprint():
        old = Geometry.from_state_dict(source["geometry"])
        raise ValueError(f"train.init_from={path} was trained on {old}, but this config "
                         f"builds {geometry}. Use the pre-training run's geometry settings.")


ARCHITECTURE_TASK_KEYS = ("name", "patch_size", "window", "decoder_area")


def architecture_differences(theirs: dict[str, Any], cfg: Any, task: bool = True) -> str:
    """The model (and, with ``task``, task) settings that shape the parameters and differ
    between a checkpoint's config and ``cfg``, as ``key=theirs (here ours)``; '' if none."""
    ours = to_container(cfg)
    pairs = [("model", k) for k in set(theirs["model"]) | set(ours["model"])
             if k not in ColumnformerConfig.RUNTIME]
    if task:
        pairs += [("task", k) for k in ARCHITECTURE_TASK_KEYS]
    differ = sorted((g, k) for g, k in pairs
                    if theirs.get(g, {}).get(k) != ours.get(g, {}).get(k))
    return ", ".join(f"{g}.{k}={theirs.get(g, {}).get(k)} (here {ours.get(g, {}).get(k)})"
                     for g, k in differ)


def init_from(model: Task, source: dict[str, Any]) -> None:
    """Copy the encoder and the sheet (its current wiring included) of a checkpoint into
    ``model``; the readout stays freshly initialised."""
    shape = tuple(source["task"]["sample_shape"])
    if shape != model.sample_shape:
        raise ValueError(f"train.init_from={source['path']} was trained on samples of shape "
                         f"{list(shape)}, this data set has {list(model.sample_shape)}: its "
                         f"encoder does not fit. Pre-train on the same kind of data.")
    state = {k: v for k, v in source["model"].items() if k.startswith(PRETRAINED)}
    wanted = {k for k in model.state_dict() if k.startswith(PRETRAINED)}
    missing = sorted(wanted - set(state))
    if missing:
        raise ValueError(f"train.init_from={source['path']} lacks {missing[:3]}"
                         f"{' ...' if len(missing) > 3 else ''}: its model has another "
                         f"architecture. Use the pre-training run's model settings.")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise ValueError(f"train.init_from={source['path']} does not fit this model (other "
                         f"model.* or sample shape?): {e}") from None

def _absolute_paths(config: dict[str, Any]) -> dict[str, Any]:
    """The config with its file paths made absolute, so that a checkpoint finds its data
    and geometry files from any working directory (``load_model``, ``analyze.py``)."""
    for group, key in (("data", "path"), ("geometry", "path"), ("geometry", "coords")):
        value = config.get(group, {}).get(key)
        if value:
            config[group][key] = str(Path(value).expanduser().resolve())
    return config


def _link_runs(run_dir: Path, resume: dict[str, Any] | None, say: Any) -> None:
    """Keep a run directory's records one run's: resuming into a NEW directory starts its
    ``metrics.csv`` / ``plasticity.csv`` with the earlier run's rows and notes where it came
    from (``resumed_from.txt``); a directory that already holds another run's metrics is
    appended to only with a warning."""
    import shutil

    source = Path(resume["path"]).parent if resume is not None else None
    same = source is not None and source.resolve() == run_dir.resolve()
    if (run_dir / "metrics.csv").exists() and not same:
        warnings.warn(f"{run_dir} already holds metrics.csv of another run: this run appends "
                      f"its rows to it. Use a fresh run directory (hydra.run.dir=...) to keep "
                      f"runs apart.", stacklevel=3)
    if source is not None and not same:
        for name in ("metrics.csv", "plasticity.csv"):
            if (source / name).is_file() and not (run_dir / name).exists():
                shutil.copyfile(source / name, run_dir / name)
        (run_dir / "resumed_from.txt").write_text(
            f"{resume['path']}\nstep {resume['step']}, epoch {resume['epoch']}\n")
        say(f"Continuing {source} in {run_dir} (its metrics so far copied; resumed_from.txt).")


def epoch_line(head: str, metrics: dict[str, Any], key: str) -> str:
    """``epoch  3 | loss 0.123 | train acc 0.950 | test acc 0.940 | wiring length 1.50``."""
    nan = float("nan")  # every batch of the epoch skipped: no training statistics
    return (f"{head} | loss {metrics.get('train_loss', nan):.3f} | train {key} "
            f"{metrics.get('train_' + key, nan):.3f} | test {key} "
            f"{metrics['test_' + key]:.3f} | wiring length {metrics['wiring_length']:.3f}")


def _last_good(ckpt_path: Path) -> str:
    return (f"The last good checkpoint is {ckpt_path}." if ckpt_path.exists()
            else "No checkpoint was written yet.")


def _apply_optim_settings(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                          cfg: Any, theirs: dict[str, Any], step: int) -> None:
    """On resume, the current config's optimizer settings apply from the resume step on
    (loading the optimizer's state would silently bring back the run's own); say which
    changed."""
    ours = to_container(cfg.optim)
    changed = {k: (theirs.get(k), ours[k]) for k in ("lr", "weight_decay", "betas")
               if theirs.get(k) != ours[k]}
    scheduler.base_lrs = [cfg.optim.lr] * len(optimizer.param_groups)
    factor = scheduler.lr_lambdas[0](step)
    fresh = param_groups(model, cfg.optim.weight_decay)  # [decayed, not decayed]
    for group, new in zip(optimizer.param_groups, fresh):
        group["initial_lr"], group["lr"] = cfg.optim.lr, cfg.optim.lr * factor
        group["betas"] = tuple(cfg.optim.betas)
        group["weight_decay"] = new["weight_decay"]
    if changed and (not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0):
        log.info("Resuming with changed optimizer settings (applied from step "
              f"{step}): " + ", ".join(f"optim.{k}: {a} -> {b}" for k, (a, b) in changed.items()))


def _rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and plain values (a checkpoint holds no objects)."""
    name, key, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"bit_generator": name, "key": torch.from_numpy(key.astype(np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss),
                       "cached_gaussian": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    npy = state["numpy"]
    if isinstance(npy, dict):
        npy = (npy["bit_generator"], npy["key"].numpy().astype(np.uint32), npy["pos"],
               npy["has_gauss"], npy["cached_gaussian"])
    np.random.set_state(npy)  # a tuple: checkpoint format 3
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------- logging
def _append_row(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` to a CSV file under the file's header; a row with a new column (the
    first evaluated epoch after unevaluated ones) rewrites the file with the wider header
    (earlier rows get empty cells), so columns never shift."""
    header = None
    if path.exists():
        with path.open(newline="") as f:
            header = next(csv.reader(f), None)
    if header is not None and not set(row) <= set(header):
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        header = header + [k for k in row if k not in header]
        tmp = path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header, restval="")
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, path)
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header or list(row), restval="")
        if header is None:
            w.writeheader()
        w.writerow(row)


class _Logger:
    """Metrics to ``metrics.csv`` (per epoch), ``plasticity.csv`` (per wiring update) and,
    when installed, TensorBoard."""

    def __init__(self, run_dir: Path, tensorboard: bool, enabled: bool = True) -> None:
        self.run_dir, self.enabled = run_dir, enabled  # disabled: ranks other than 0
        self.writer = None
        if tensorboard and enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tb"))
            except ImportError:  # tensorboard is optional
                self.writer = None

    def log(self, row: dict[str, float], step: int, name: str = "metrics") -> None:
        if not self.enabled:
            return
        _append_row(self.run_dir / f"{name}.csv", row)
        if self.writer is not None:
            for k, v in row.items():
                if k not in ("epoch", "step"):
                    self.writer.add_scalar(k if name == "metrics" else f"{name}/{k}", v, step)
            self.writer.flush()

    def scalar(self, name: str, value: Any, step: int) -> None:
        """One value per optimizer step (TensorBoard only)."""
        if self.writer is not None:
            self.writer.add_scalar(name, float(value), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ---------------------------------------------------------------------- main loop
def train(cfg: Any, run_dir: str | os.PathLike = ".",
          callbacks: Sequence[Callable[..., None]] = ()) -> dict[str, Any]:
    """Train the model a config describes; return final metrics and the checkpoint path.

    Args:
        cfg: a composed config (see ``configs/config.yaml`` and :mod:`colgraph.config`).
        run_dir: where ``checkpoint.pt``, ``metrics.csv`` and TensorBoard logs go.
        callbacks: called at the end of every epoch on the main process as
            ``callback(model=..., data=..., epoch=..., run_dir=...)`` (the model in train
            mode; switch modes yourself). ``train.connectome_every=N`` adds
            :class:`colgraph.connectome.ConnectomeSnapshots`.
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    checked = validate_config(cfg)  # every setting, before any work
    _console_logging()
    device = resolve_device(cfg.device)
    ranks = Distributed.from_env(device)  # one process unless torchrun started several
    try:
        if ranks.enabled and device.type == "cuda":
            device = torch.device("cuda", ranks.local_rank)
            torch.cuda.set_device(device)
        # messages during an epoch are written above the progress bar, not through it; only
        # the logger that prints them (hydra's root handler, or our own): both would say
        # every line twice
        with logging_redirect_tqdm(loggers=[logging.getLogger() if log.propagate else log]):
            return _train(cfg, checked, Path(run_dir), device, ranks, list(callbacks))
    finally:
        ranks.close()


def _train(cfg: Any, checked: dict[str, Any], run_dir: Path, device: torch.device,
           ranks: Distributed, callbacks: list[Callable[..., None]]) -> dict[str, Any]:
    from tqdm.auto import tqdm

    plasticity_cfg, scale_cfg = checked["plasticity"], checked["scale"]
    smooth_cfg, train_cfg = checked["smoothness"], checked["train"]
    main = ranks.is_main  # rank 0 logs, shows progress and writes every file
    if cfg.train.connectome_every:
        from .connectome import ConnectomeSnapshots

        callbacks = [*callbacks, ConnectomeSnapshots(cfg.train.connectome_every)]
    say = log.info if main else (lambda *a, **k: None)
    if ranks.enabled and cfg.train.batch_size < ranks.world:
        raise ValueError(f"train.batch_size={cfg.train.batch_size} is the GLOBAL batch, split "
                         f"over {ranks.world} processes: give at least one sample per process.")
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    resume = load_checkpoint(cfg.train.resume) if cfg.train.resume else None
    if resume is not None and resume.get("weights_only"):
        raise ValueError(f"train.resume={cfg.train.resume} is a weights-only export (no "
                         f"optimizer or RNG state): it cannot continue a run. Start from its "
                         f"weights with train.init_from={cfg.train.resume} instead.")
    source = (load_checkpoint(cfg.train.init_from)
              if cfg.train.init_from and resume is None else None)
    if source is not None:
        check_init_source(source, cfg)
    if resume is not None:
        differ = architecture_differences(resume["config"], cfg)
        if differ:
            raise ValueError(f"Cannot resume from {resume['path']}: it was trained with other "
                             f"model settings: {differ}. Resume with the run's own settings "
                             f"(its .hydra/config.yaml), or start a new run with "
                             f"train.init_from to reuse its weights.")
    if train_cfg.freeze != "none" and plasticity_cfg.enabled:
        raise ValueError("train.freeze=sheet freezes the edge biases that plasticity=... "
                         "edits: use plasticity=none for a probe.")
    seed_everything(cfg.train.seed)

    geometry = build_geometry(cfg.geometry)
    if resume is not None and resume["geometry_fingerprint"] != geometry.fingerprint():
        old = Geometry.from_state_dict(resume["geometry"])
        hint = (" A geometry=graph run from before geometry.wiring applied to graph files "
                "used the file's edges only: resume it with geometry.wiring.rule=none." if cfg.geometry.name == "graph"
                and cfg.geometry.wiring.rule != "none" else "")
        raise ValueError(f"Cannot resume from {resume['path']}: it was trained on {old}, but "
                         f"the current config builds {geometry}. Resume with the run's own "
                         f"geometry settings (see its .hydra/config.yaml).{hint}")
    if scale_cfg.area is not None:
        geometry.area(scale_cfg.area)  # an unknown area fails now, not at the step
    data = load_task_data(cfg)
    augment = Augment(**to_container(cfg.data.augment))
    model = build_model(cfg, geometry, data.sample_shape, data.num_classes).to(device)
    if resume is not None:  # before the optimizer: edited wiring replaces per-edge parameters
        model.load_state_dict(resume["model"])  # the CURRENT wiring, however it was edited
    elif source is not None:
        init_from(model, source)
    if train_cfg.freeze == "sheet":  # a probe: only the readout learns
        for name, p in model.named_parameters():
            p.requires_grad_(not name.startswith(PRETRAINED))
    optimizer = torch.optim.AdamW(param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                                  betas=tuple(cfg.optim.betas), fused=cfg.optim.fused)
    steps_per_epoch = math.ceil(len(data.x_train) / cfg.train.batch_size)
    total_steps = steps_per_epoch * cfg.train.epochs
    warmup = max(1, int(cfg.optim.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(total_steps, warmup, cfg.optim.min_lr_ratio))
    epoch, step, batch0 = 0, 0, 0
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        epoch, step, batch0 = resume["epoch"], resume["step"], resume.get("batch", 0)
        _apply_optim_settings(model, optimizer, scheduler, cfg, resume["config"]["optim"], step)
        if batch0 and resume["config"]["train"]["batch_size"] != cfg.train.batch_size:
            raise ValueError(f"Cannot resume {resume['path']} mid-epoch (after batch {batch0} "
                             f"of epoch {epoch + 1}) with another train.batch_size "
                             f"({cfg.train.batch_size}; the run used "
                             f"{resume['config']['train']['batch_size']}): keep its batch size.")
    plasticity = (Plasticity(model, plasticity_cfg, total_steps, optimizer, ranks)
                  if plasticity_cfg.enabled else None)
    if resume is not None:
        if plasticity is not None and resume.get("plasticity") is not None:
            plasticity.load_state_dict(resume["plasticity"])
        _set_rng_state(resume["rng"])
        say(f"Resumed from {resume['path']} at epoch {epoch}, step {step} "
            f"({model.columnformer.edges.num_edges} edges).")
    net = ranks.wrap(model)  # the forward pass; everything else reaches into `model`

    cf = model.columnformer
    radius = smoothness_radius(cfg, cf.edge_length)
    if main:
        _link_runs(run_dir, resume, say)
    logger = _Logger(run_dir, cfg.train.tensorboard, enabled=main)
    ckpt_path = run_dir / CHECKPOINT_NAME
    if main and remove_stale_tmp(ckpt_path):
        say(f"Removed {ckpt_path}.tmp, a partial checkpoint left by a crash mid-write.")
    metrics: dict[str, Any] = {}
    n_params = sum(p.numel() for p in model.parameters())
    say(f"{geometry} | {n_params / 1e6:.2f}M parameters | device {device}"
        + (f" | {ranks.world} processes" if ranks.enabled else ""))

    def evaluate_main() -> dict[str, float]:
        """The test metrics over the whole test set (each rank evaluates its share)."""
        return evaluate(model, data.x_test, data.y_test, 256, device, radius, ranks)
    start = time.perf_counter()
    done = cfg.train.max_steps is not None and step >= cfg.train.max_steps
    skipped = resume.get("skipped", 0) if resume is not None else 0

    def save(epoch: int, batch: int) -> None:
        """Checkpoint after ``batch`` batches of ``epoch`` (0: at an epoch's start); a
        sheet with a non-finite tensor is never written."""
        state = model.state_dict()
        bad = first_nonfinite(state.items())
        if bad is not None:  # on every rank: their parameters are the same
            raise FloatingPointError(
                f"Not writing a checkpoint at step {step}: parameter {bad}. "
                f"{_last_good(ckpt_path)} Lower optim.lr or set optim.grad_clip.")
        if not main:
            return
        save_checkpoint(ckpt_path, {
            "colgraph_version": __version__, "checkpoint_format": CHECKPOINT_FORMAT,
            "config": _absolute_paths(to_container(cfg)),
            "geometry": geometry.state_dict(), "geometry_fingerprint": geometry.fingerprint(),
            "model": state, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "epoch": epoch, "batch": batch, "step": step,
            "skipped": skipped,
            "plasticity": plasticity.state_dict() if plasticity is not None else None,
            "rng": _rng_state(), "metrics": metrics, "task": model.spec()})

    while epoch < cfg.train.epochs and not done:
        model.train()
        gen = torch.Generator().manual_seed(cfg.train.seed * 100_003 + epoch)
        batches = iterate_batches(data.x_train, data.y_train, cfg.train.batch_size,
                                  shuffle=True, generator=gen, start=batch0)
        bar = tqdm(batches, total=steps_per_epoch, initial=batch0,
                   desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
                   disable=not (cfg.train.progress and main), leave=False)
        totals = _Totals()
        batch = batch0
        for xb, yb in bar:
            batch += 1
            if len(xb) < ranks.world:  # a last global batch too small to split: dropped
                continue
            xb, yb = ranks.shard(xb, yb)  # this rank's share of the global batch
            xb, yb = xb.to(device), yb.to(device)
            if augment.enabled:
                xb = augment(xb)
            recording = plasticity is not None and plasticity.wants_record(step + 1)
            if recording:
                plasticity.start_recording()
            res = net(xb, yb)
            out, loss = res.out, res.loss
            if cfg.wiring.weight:
                cost = wiring_cost(out.attention, cf.edge_index, cf.edge_length, cfg.wiring.p)
                loss = loss + cfg.wiring.weight * cost
            if smooth_cfg.weight:
                edges = cf.edges
                loss = loss + smooth_cfg.weight * smoothness_loss(
                    out.state, edges.index, edges.length, edges.pos, radius,
                    smooth_cfg.temperature, smooth_cfg.negatives, period=edges.period,
                    metric=edges.metric)
            if cfg.sparsity.weight:
                loss = loss + cfg.sparsity.weight * out.activity.l1
            optimizer.zero_grad(set_to_none=True)
            finite = bool(torch.isfinite(loss))
            if ranks.enabled:  # every rank skips (or stops) together, or backward would hang
                finite = ranks.sum({"bad": float(not finite)})["bad"] == 0
            bad = None if finite else f"the loss is {loss.item()} (on some rank)"
            if bad is None:
                loss.backward()
                # the total norm, checked BEFORE clipping (clip_grad_norm_ would spread one
                # NaN over every gradient and hide which tensor it came from), then clipped
                # as clip_grad_norm_ does
                grads = [p.grad for p in model.parameters() if p.grad is not None]
                norm = torch.linalg.vector_norm(torch.stack(
                    torch._foreach_norm(grads) or [loss.new_zeros(())]))
                if not torch.isfinite(norm):
                    bad = "gradient of " + str(first_nonfinite(
                        (n, p.grad) for n, p in model.named_parameters()))
                elif cfg.optim.grad_clip and grads:
                    torch._foreach_mul_(grads, (cfg.optim.grad_clip / (norm + 1e-6)).clamp(max=1.0))
            if bad is not None:
                cause = ("the batch holds non-finite inputs (check the data)"
                         if not bool(torch.isfinite(xb).all()) else
                         "Lower optim.lr or set optim.grad_clip")
                if not cfg.train.skip_nonfinite:
                    raise FloatingPointError(
                        f"At step {step} {bad}: {cause}. {_last_good(ckpt_path)} "
                        f"train.skip_nonfinite=true skips such batches instead.")
                skipped += 1
                optimizer.zero_grad(set_to_none=True)
                if recording:
                    plasticity.stop_recording()
                say(f"step {step}: skipped a batch ({bad}); {skipped} skipped so far")
                continue
            optimizer.step()
            logger.scalar("train/loss_step", res.loss, step)
            scheduler.step()
            step += 1
            if plasticity is not None:
                records = plasticity.stop_recording() if recording else None
                plasticity.observe(out.attention)
                update = plasticity.maybe_update(step, records)
                if update is not None:
                    logger.log({"epoch": epoch, **update}, step, name="plasticity")
                    net = ranks.wrap(model)  # the per-edge parameters changed shape
            if scale_cfg.area is not None and step == scale_cfg.at_step:
                grown = add_columns(model, refine_grid(model, scale_cfg.area, scale_cfg.factor),
                                    wiring=build_wiring(cfg.geometry.wiring),
                                    optimizer=optimizer)
                net = ranks.wrap(model)  # new per-column parameters (rank 0's everywhere)
                say(f"step {step}: sheet grew to {grown['columns']} columns "
                    f"(+{grown['added_columns']} in {scale_cfg.area}, "
                    f"+{grown['added_edges']} edges)")
            totals.add(res.loss.detach(), {k: v.detach() for k, v in res.stats.items()},
                       len(xb))
            bar.set_postfix({k[6:]: f"{v:.3f}" for k, v in totals.means("train_").items()},
                            **({"edges": cf.edges.num_edges} if plasticity is not None else {}))
            if cfg.train.max_steps is not None and step >= cfg.train.max_steps:
                done = True
                break
            if (cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0
                    and batch < steps_per_epoch):
                save(epoch, batch)
        bar.close()
        batch0 = 0
        if batch < steps_per_epoch:  # stopped mid-epoch (train.max_steps): resume from here
            metrics = {"epoch": epoch + batch / steps_per_epoch, "step": step,
                       **totals.means("train_", ranks), "lr": scheduler.get_last_lr()[0],
                       "edges": cf.edges.num_edges, "skipped_batches": skipped,
                       "time": time.perf_counter() - start}
            metrics.update(evaluate_main())
            say(epoch_line(f"epoch {metrics['epoch']:.2f}", metrics, model.metric))
            logger.log(metrics, step)
            save(epoch, batch)
            break
        epoch += 1
        metrics = {"epoch": epoch, "step": step, **totals.means("train_", ranks),
                   "lr": scheduler.get_last_lr()[0], "edges": cf.edges.num_edges,
                   "skipped_batches": skipped, "time": time.perf_counter() - start}
        if epoch % cfg.train.eval_every == 0 or epoch == cfg.train.epochs or done:
            metrics.update(evaluate_main())
            # one line per evaluated epoch, with or without the progress bar
            say(epoch_line(f"epoch {epoch:3d}", metrics, model.metric))
        logger.log(metrics, step)
        if main:
            for callback in callbacks:
                callback(model=model, data=data, epoch=epoch, run_dir=run_dir)
        save(epoch, 0)
    logger.close()
    if "wiring_length" not in metrics:
        metrics.update(evaluate_main())
    metrics["checkpoint"] = str(ckpt_path)
    ranks.barrier()  # rank 0's checkpoint is on disk when any rank returns
    say(f"test {model.metric_label} {metrics['test_' + model.metric]:.4f} | mean attention-weighted wiring length "
          f"{metrics['wiring_length']:.3f} | checkpoint {ckpt_path}")
    if main:
        from .curves import plot_training

        try:  # a figure must never cost the run
            plot_training(run_dir, run_dir / "training.png")
        except Exception as e:  # noqa: BLE001 (matplotlib backends, fonts, disk)
            warnings.warn(f"Could not draw {run_dir / 'training.png'}: {e}")
    return metrics
