"""The task interface: what enters the sheet, what is read out of it, and how it is scored.

A :class:`Task` is an ``nn.Module`` holding

* an **encoder** (``encode``: a batch of samples -> tokens ``[B, N_in, C]`` in input-area
  order: whatever the task feeds the sheet),
* the :class:`~colgraph.Columnformer` (``.columnformer``),
* a **readout** (``ColumnformerOutput`` -> prediction),
* its **loss** and per-batch **statistics** (``forward(x, y)`` returns a :class:`TaskOutput`),
* the **metadata** a checkpoint needs to rebuild it (``spec()``; with the config, that is all
  ``load_model`` needs, without the data).

Tasks register by name in :data:`TASKS` (the ``task`` config group picks one, as the
``geometry`` group picks a geometry); data sets are a separate group (``data``) and a task
declares the kind of sample it reads (``modality``).
"""
from __future__ import annotations

import inspect
from typing import Any, ClassVar, NamedTuple

from torch import Tensor, nn

from ..geometry import Geometry
from ..model import Columnformer, ColumnformerConfig, ColumnformerOutput
from ..parallel.shard import ColumnShard
from ..registry import Registry

__all__ = ["Task", "TaskOutput", "TASKS", "register_task", "task_class", "build_task"]


class TaskOutput(NamedTuple):
    loss: Tensor  # scalar: the task's loss, mean over the batch
    stats: dict[str, Tensor]  # per-batch SUMS over samples (e.g. correct predictions)
    prediction: Tensor  # what the readout produced (logits, pixels, values)
    out: ColumnformerOutput  # the sheet's states and attention


class Task(nn.Module):
    """Base class: subclasses set the class attributes and define ``encode``, ``readout``
    and ``forward``.

    Args:
        geometry: the sheet's geometry.
        model: the Columnformer's config.
        cfg: the ``task`` config node (:class:`colgraph.config.TaskConfig`).
        sample_shape: shape of one sample, ``(C, H, W)`` or ``(C, L)``.
        num_classes: classes in the labels (tasks that ignore labels ignore it).
        shard: on a column-sharded sheet, this process's
            :class:`~colgraph.parallel.ColumnShard`: the task builds its Columnformer on it
            (``column_shard``) and reduces its readout and loss over the group, so every
            process computes the whole sheet's loss (see :mod:`colgraph.parallel.shard`).
            A task that does not take it runs on one process per sheet only.
    """

    name: ClassVar[str]
    modality: ClassVar[str]  # "image" | "sequence": the samples it reads (colgraph.data)
    stats: ClassVar[tuple[str, ...]]  # the keys of TaskOutput.stats (metrics.csv's columns)
    metric: ClassVar[str]  # the headline statistic, reported as test_<metric>
    metric_label: ClassVar[str]  # how it is printed
    #: the ``task.*`` config keys it reads, declared in its own class body (a subclass does
    #: not inherit them: it may read more): another task's key set on it is refused (it
    #: cannot take effect); ``None``: undeclared, it may read any (nothing is refused)
    settings: ClassVar[tuple[str, ...] | None] = None
    columnformer: Columnformer

    def __init__(self, geometry: Geometry, model: ColumnformerConfig, cfg: Any,
                 sample_shape: tuple[int, ...], num_classes: int,
                 shard: ColumnShard | None = None) -> None:
        super().__init__()
        self.sample_shape, self.num_classes = tuple(sample_shape), int(num_classes)
        self.column_shard = shard or ColumnShard.whole(geometry.num_columns)

    def encode(self, x: Tensor) -> Tensor:
        """Samples -> tokens ``[B, N_in, C]`` in input-area order."""
        raise NotImplementedError

    def readout(self, out: ColumnformerOutput) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, y: Tensor) -> TaskOutput:
        raise NotImplementedError

    def sheet(self, x: Tensor) -> ColumnformerOutput:
        """Run the sheet on what the task feeds it (connectome export, analysis)."""
        return self.columnformer(self.encode(x))

    def spec(self) -> dict[str, Any]:
        """Plain metadata stored in checkpoints: with the config, it rebuilds the task."""
        return {"name": self.name, "sample_shape": list(self.sample_shape),
                "num_classes": self.num_classes}

    def check_sample(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.sample_shape:
            raise ValueError(f"Task '{self.name}' expects samples of shape "
                             f"[B, {', '.join(map(str, self.sample_shape))}], got "
                             f"{list(x.shape)}.")


TASKS = Registry("task", hint="Pick one with task=<name>.")  # name -> Task subclass


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available as ``task=<cls.name>``, reading the
    ``task.*`` keys its class body declares in ``settings`` (none declared: it may read
    any). Registering a name again replaces the earlier task, with a warning."""
    return TASKS.register(cls.name, settings=vars(cls).get("settings"))(cls)


def task_class(name: str | type[Task]) -> type[Task]:
    """The registered task ``name`` (a :class:`Task` subclass passes through), or a clear
    error listing the choices."""
    return TASKS.lookup(name)


def build_task(cfg: Any, model: ColumnformerConfig, geometry: Geometry,
               sample_shape: tuple[int, ...], num_classes: int,
               shard: ColumnShard | None = None) -> Task:
    """The task ``cfg.name`` (see :data:`TASKS`) on ``geometry`` (on this process's
    ``shard`` of a column-sharded sheet)."""
    cls = task_class(cfg.name)
    if shard is None or not shard.enabled:
        return cls(geometry, model, cfg, sample_shape, num_classes)
    if "shard" not in inspect.signature(cls).parameters:
        raise TypeError(f"Task '{cfg.name}' ({cls.__qualname__}) does not take a column shard, "
                        f"so it cannot run on a column-sharded sheet (parallel.columns > 1). "
                        f"Accept a `shard` keyword, pass it to Task.__init__ and build the "
                        f"Columnformer with shard=self.column_shard (see colgraph.parallel), "
                        f"or set parallel.columns=1.")
    return cls(geometry, model, cfg, sample_shape, num_classes, shard=shard)
