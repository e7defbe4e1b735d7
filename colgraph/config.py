"""Structured configs: one dataclass per config group, registered in hydra's ConfigStore.

YAML variants live in ``configs/<group>/``; each starts from its group's schema
(``defaults: [base_<group>, _self_]``) so typos and wrong types fail at compose time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import MISSING

from .model import ColumnformerConfig
from .plasticity import MigrateConfig, PlasticityConfig
from .geometry import GeometryConfig
from .validation import (Checks, check_types, fraction, from_mapping, non_negative, one_of,
                         positive, problems_of, require, unread_settings)

__all__ = ["TaskConfig", "AugmentConfig", "DataConfig",
           "OptimConfig", "TrainConfig", "WiringCostConfig", "RenamedWiringCost", "RENAMED",
           "upgrade_config", "PlasticityConfig", "ScaleConfig",
           "SmoothnessConfig", "SparsityConfig", "Config", "register_configs", "from_node",
           "to_container", "validate_config", "check_geometry", "GROUPS", "ParallelConfig"]



def _declared_settings(check: Checks, registry: Any, obj: Any, group: str
                      ) -> dict[str, tuple[str, ...]]:
    """The settings each entry of ``registry`` declared it reads (``register(name,
    settings=...)``; entries that declared none are left out: they may read any), for
    :func:`~colgraph.validation.unread_settings`. A name the chosen entry (``obj.name``)
    declares that is no key of the group (``obj``'s dataclass fields) is refused through
    ``check``: its declaration is wrong."""
    keys = [f.name for f in fields(obj)]
    out = {}
    for name in registry:
        own = registry.settings_of(name)
        if own is None:
            continue
        wrong = [k for k in own if k not in keys]
        check.refuse(bool(wrong) and name == obj.name, f"The {registry.kind} '{name}' declares the setting(s) "
                                  f"{', '.join(wrong)}, which {group} has no key for (its "
                                  f"keys: {', '.join(keys)}). Fix settings=... where it is "
                                  f"registered.")
        out[name] = tuple(k for k in own if k in keys)
    return out


@dataclass
class TaskConfig:
    name: str = MISSING  # classify_image | classify_sequence | masked_image | predict_sequence (see colgraph.tasks.TASKS)
    patch_size: int | None = None  # images: patch side; None = one patch per input column
    window: int | None = None  # sequences: window length; None = one window per input column
    pool: str = "mean"  # classification: mean | max over the output area's columns
    label_smoothing: float = 0.0  # classification: cross-entropy against smoothed targets
    mask_ratio: float = 0.5  # masked_image: fraction of patches replaced by the mask token
    norm_pix: bool = False  # masked_image: predict per-patch normalised pixels
    decoder_area: str | None = None  # masked_image: area read out (default: the input area)

    def __post_init__(self) -> None:
        from .tasks import TASKS

        check_types(self, "task")
        with Checks() as check:
            check(require, self.name in TASKS, "task", self.name,
                  "one of " + ", ".join(TASKS), "Pick one with task=<name>.")
            for key in ("patch_size", "window"):
                v = getattr(self, key)
                check(require, v is None or v >= 1, f"task.{key}", v, ">= 1 or null (automatic)")
            check(one_of, "task.pool", self.pool, ("mean", "max"))
            check(fraction, "task.label_smoothing", self.label_smoothing)
            check(fraction, "task.mask_ratio", self.mask_ratio, low_open=True)
            if check.errors:  # what follows assumes valid values
                return
            unread_settings(check, self, "task", "task", self.name,
                            _declared_settings(check, TASKS, self, "task"))


@dataclass
class AugmentConfig:
    """Training-time augmentation (see :class:`colgraph.data.Augment`); off in evaluation."""

    shift: int = 0  # max translation in pixels / samples (zero fill): random crops
    flip: bool = False  # mirror left-right with probability 1/2
    scale: float = 0.0  # multiply by a factor in [1 - scale, 1 + scale]

    def __post_init__(self) -> None:
        check_types(self, "data.augment")
        with Checks() as check:
            check(require, self.shift >= 0, "data.augment.shift", self.shift,
                  ">= 0 pixels / samples")
            check(fraction, "data.augment.scale", self.scale)


@dataclass
class DataConfig:
    name: str = MISSING  # digits | file | mnist | cifar10 | waves (see colgraph.data.DATASETS)
    path: str | None = None  # file: .pt / .npz with x, y (optionally x_test, y_test)
    root: str = "data"  # mnist / cifar10: download folder
    download: bool = True
    test_fraction: float = 0.2  # digits / waves / file without x_test: held-out fraction
    split_seed: int = 0
    samples: int = 3000  # waves: number of sequences
    length: int = 64  # waves: samples per sequence
    classes: int = 8  # waves: number of templates
    width: int = 16  # waves: template length
    noise: float = 0.2  # waves: noise standard deviation
    seed: int = 0  # waves: generator seed
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        from .data import DATASETS, fixed_split_conflict, npz_keys

        check_types(self, "data")
        with Checks() as check:
            check(require, self.name in DATASETS, "data", self.name,
                  "one of " + ", ".join(DATASETS), "Pick one with data=<name>.")
            check(fraction, "data.test_fraction", self.test_fraction, low_open=True)
            for key in ("samples", "length", "classes", "width"):
                check(require, getattr(self, key) >= 1, f"data.{key}", getattr(self, key),
                      ">= 1")
            check(non_negative, "data.noise", self.noise)
            if self.name == "waves":  # before generating anything
                check(require, self.width <= self.length, "data.width", self.width,
                      f"<= data.length ({self.length}): a template fits in the signal")
                check(require, self.classes >= 2, "data.classes", self.classes, ">= 2")
                check(require, self.samples >= self.classes, "data.samples", self.samples,
                      f">= data.classes ({self.classes}): one sample per class at least")
            if check.errors:  # what follows assumes valid values
                return
            unread_settings(check, self, "data", "data", self.name,
                            _declared_settings(check, DATASETS, self, "data"))
            keys = npz_keys(self.path) if self.name == "file" and self.path else None
            if keys is not None:  # an .npz's arrays are named in its archive: no need to load
                conflict = fixed_split_conflict(self, keys, self.path)
                check.unread(conflict is not None, conflict or "")


@dataclass
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0  # max gradient norm; 0 disables
    fused: bool = False  # fused AdamW: no temporaries (a parameter copy less), ~10% slower

    def __post_init__(self) -> None:
        check_types(self, "optim")
        with Checks() as check:
            check(positive, "optim.lr", self.lr, "A typical value is 1e-3.")
            check(non_negative, "optim.weight_decay", self.weight_decay, "0 turns it off.")
            check(require, len(self.betas) == 2 and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                for b in self.betas),
                  "optim.betas", list(self.betas), "two numbers in [0, 1), e.g. [0.9, 0.95]")
            check(non_negative, "optim.warmup_epochs", self.warmup_epochs,
                  "0 turns warmup off.")
            check(fraction, "optim.min_lr_ratio", self.min_lr_ratio, high_open=False)
            check(non_negative, "optim.grad_clip", self.grad_clip, "0 turns clipping off.")


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    seed: int = 0
    resume: str | None = None  # checkpoint file or run directory to continue
    init_from: str | None = None  # start from another run's encoder + sheet (fine-tune, probe)
    freeze: str = "none"  # none | sheet: train only the readout (a linear probe)
    eval_every: int = 1  # epochs
    max_steps: int | None = None  # stop early after this many optimizer steps (smoke tests)
    progress: bool = True
    tensorboard: bool = True  # log to TensorBoard when it is installed
    connectome_every: int = 0  # epochs between connectome snapshots (run_dir/connectome/)
    checkpoint_every: int = 0  # optimizer steps between checkpoints (0: at each epoch's end only)
    skip_nonfinite: bool = False  # skip a batch whose loss / gradients are not finite (counted)
    max_skipped_fraction: float = 0.1  # skip_nonfinite: stop when more of an epoch's batches are skipped (1: never)

    def __post_init__(self) -> None:
        check_types(self, "train")
        with Checks() as check:
            check.refuse(self.epochs < 1 or self.batch_size < 1,
                         f"train.epochs and train.batch_size must be >= 1 (got "
                         f"{self.epochs}, {self.batch_size}).")
            check.refuse(self.freeze not in ("none", "sheet"),
                         f"train.freeze must be 'none' or 'sheet' (got {self.freeze!r}).")
            check(require, self.eval_every >= 1, "train.eval_every", self.eval_every,
                  ">= 1 epoch")
            check(require, self.max_steps is None or self.max_steps >= 1, "train.max_steps",
                  self.max_steps, ">= 1 or null (no limit)")
            check(require, self.connectome_every >= 0, "train.connectome_every",
                  self.connectome_every, ">= 0 epochs (0: no snapshots)")
            check(require, self.seed >= 0, "train.seed", self.seed, ">= 0")
            check(require, self.checkpoint_every >= 0, "train.checkpoint_every",
                  self.checkpoint_every, ">= 0 steps (0: at the end of each epoch only)")
            check(fraction, "train.max_skipped_fraction", self.max_skipped_fraction,
                  high_open=False)
            if check.errors:  # what follows assumes valid values
                return
            default = TrainConfig.max_skipped_fraction
            check.unread(not self.skip_nonfinite and self.max_skipped_fraction != default,
                         f"train.max_skipped_fraction must be left at {default} unless "
                         f"train.skip_nonfinite=true (without skipping, the first non-finite "
                         f"batch stops the run) (got {self.max_skipped_fraction!r}). Set "
                         f"train.skip_nonfinite=true or drop the setting.")
            check.unread(bool(self.resume and self.init_from),
                         f"train.resume={self.resume} continues that run with all its weights, "
                         f"so train.init_from={self.init_from} would be ignored. Drop "
                         f"train.init_from to resume (the resumed run keeps what it started "
                         f"from), or drop train.resume to start a new run from "
                         f"train.init_from.")
            check.unread(self.connectome_every > self.epochs,
                         f"train.connectome_every={self.connectome_every} epochs is more than "
                         f"train.epochs={self.epochs}: no connectome snapshot would be taken. "
                         f"Set train.connectome_every <= train.epochs, or 0 for none.")


@dataclass
class WiringCostConfig:
    """The wiring cost in the loss (``wiring_cost.*``; see
    :func:`colgraph.objectives.wiring_cost`). Not the geometry's wiring rule, which decides
    which edges exist (``geometry.wiring.*``)."""

    weight: float = 0.0  # weight of the wiring cost in the loss (0 = off)
    p: float = 1.0  # cost per edge = attention * length^p

    def __post_init__(self) -> None:
        check_types(self, "wiring_cost")
        with Checks() as check:
            check(non_negative, "wiring_cost.weight", self.weight,
                  "0 turns the wiring cost off.")
            check(non_negative, "wiring_cost.p", self.p)
            if check.errors:  # what follows assumes valid values
                return
            check.unread(self.weight == 0 and self.p != 1.0,
                         f"wiring_cost.p={self.p} has no effect with wiring_cost.weight=0 (the "
                         f"wiring cost is off; the logged wiring_length is attention x length): "
                         f"set wiring_cost.weight > 0 or drop wiring_cost.p.")


@dataclass
class RenamedWiringCost:
    """``wiring.*``, the old name of ``wiring_cost.*``: a key set here still works, with a
    deprecation warning (:func:`upgrade_config`); ``None`` = not set."""

    weight: float | None = None
    p: float | None = None


#: old group name -> new group name: configs (command lines, YAML, stored checkpoints) that
#: use the old name keep working, with a warning naming the new key
RENAMED = {"wiring": "wiring_cost"}


@dataclass
class SmoothnessConfig:
    """Local contrastive feature-smoothness loss (see colgraph.objectives.smoothness_loss)."""

    weight: float = 0.0  # weight in the loss (0 = off; the smoothness measure is always logged)
    radius: float | None = None  # neighbours: edges no longer than this (None: median edge)
    temperature: float = 0.1
    negatives: int = 8  # random distant partners per column

    def __post_init__(self) -> None:
        check_types(self, "smoothness")
        with Checks() as check:
            check.refuse(not (self.weight >= 0 and self.temperature > 0 and self.negatives >= 1
                              and (self.radius is None or self.radius > 0))
                         or not all(map(math.isfinite, (self.weight, self.temperature,
                                                        self.radius or 1.0))),
                         f"smoothness needs weight >= 0, temperature > 0, negatives >= 1 and "
                         f"radius > 0 or null (the median edge), all finite (got weight="
                         f"{self.weight}, temperature={self.temperature}, negatives="
                         f"{self.negatives}, radius={self.radius}).")
            if check.errors:
                return
            for key in ("temperature", "negatives"):  # the loss's only: radius is logged too
                value, default = getattr(self, key), getattr(SmoothnessConfig, key)
                check.unread(self.weight == 0 and value != default,
                             f"smoothness.{key}={value} has no effect with smoothness.weight=0 "
                             f"(the smoothness loss is off; the logged smoothness measure "
                             f"reads only smoothness.radius): set smoothness.weight > 0 or "
                             f"drop smoothness.{key}.")


@dataclass
class SparsityConfig:
    """Scale-free L1 penalty on column states (see colgraph.model.Activity)."""

    weight: float = 0.0  # weight of mean|x| / RMS(x) in the loss (0 = off; always logged)

    def __post_init__(self) -> None:
        check_types(self, "sparsity")
        non_negative("sparsity.weight", self.weight, "0 turns the penalty off.")


@dataclass
class ScaleConfig:
    """Grow the sheet during training: make ``area`` ``factor`` times denser at ``at_step``."""

    area: str | None = None  # the lattice area to refine (None: never grow)
    at_step: int = 0  # optimizer step after which the new columns are added
    factor: int = 2  # lattice points per old spacing along each axis

    def __post_init__(self) -> None:
        check_types(self, "scale")
        with Checks() as check:
            check.refuse(self.area is not None and (self.at_step < 1 or self.factor < 2),
                         f"scale.at_step must be >= 1 and scale.factor >= 2 (got "
                         f"{self.at_step}, {self.factor}).")
            for key in ("at_step", "factor"):
                value, default = getattr(self, key), getattr(ScaleConfig, key)
                check.unread(self.area is None and value != default,
                             f"scale.{key}={value} has no effect without scale.area (no area "
                             f"grows): set scale.area=<area> (e.g. input) to grow the sheet, "
                             f"or drop scale.{key}.")


@dataclass
class ParallelConfig:
    """How a multi-process run (``torchrun``) splits its work: ``columns`` processes share
    each sheet (column sharding, :mod:`colgraph.parallel`), and the world's
    ``WORLD_SIZE / columns`` groups of them split each batch (data parallel)."""

    columns: int = 1  # processes per sheet: 1 = data parallel only
    partition: str = "sfc"  # how the columns are split: sfc (Hilbert curve) | metis

    PARTITIONS = ("sfc", "metis")

    def __post_init__(self) -> None:
        check_types(self, "parallel")
        with Checks() as check:
            check(require, self.columns >= 1, "parallel.columns", self.columns,
                  ">= 1 (processes that share one sheet)")
            check(one_of, "parallel.partition", self.partition, self.PARTITIONS)
            check.unread(self.columns == 1 and self.partition != "sfc",
                         f"parallel.partition={self.partition} has no effect with "
                         f"parallel.columns=1 (the sheet is not split): set parallel.columns "
                         f"> 1 or drop parallel.partition.")


@dataclass
class Config:
    # one of colgraph.geometry.GEOMETRIES (composed with GeometryConfig.schema(), see
    # register_configs; validate_config picks the option's dataclass)
    geometry: Any = MISSING
    model: ColumnformerConfig = MISSING
    task: TaskConfig = MISSING
    data: DataConfig = MISSING
    optim: OptimConfig = MISSING
    train: TrainConfig = MISSING
    wiring_cost: WiringCostConfig = field(default_factory=WiringCostConfig)
    wiring: RenamedWiringCost = field(default_factory=RenamedWiringCost)  # old: wiring_cost
    plasticity: PlasticityConfig = field(default_factory=PlasticityConfig)
    migrate: MigrateConfig = field(default_factory=MigrateConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    smoothness: SmoothnessConfig = field(default_factory=SmoothnessConfig)
    sparsity: SparsityConfig = field(default_factory=SparsityConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    device: str = "auto"  # auto | cpu | cuda | cuda:1 | ...


def register_configs() -> None:
    """Register the schemas with hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    # geometry: every registered option's settings, each optional (the option's dataclass
    # refuses the others in validate_config); built now, so registered options are in it
    for group, node in (("geometry", GeometryConfig.schema()), ("model", ColumnformerConfig),
                        ("task", TaskConfig), ("data", DataConfig), ("optim", OptimConfig), ("train", TrainConfig),
                        ("plasticity", PlasticityConfig)):
        cs.store(group=group, name=f"base_{group}", node=node)


def from_node(cls: type, node: Any, group: str) -> Any:
    """The dataclass ``cls`` from the config node of ``group``, refusing unknown keys (which
    hydra lets through with ``+group.key=...``) with the valid choices; ``cls``'s own
    ``__post_init__`` checks the values. A group of registered options (``cls`` with a
    ``from_dict``, e.g. :class:`~colgraph.geometry.GeometryConfig`) gives the option its
    node names, refusing the keys that option does not read the same way."""
    data = node if isinstance(node, dict) else to_container(node)
    if hasattr(cls, "from_dict"):
        return cls.from_dict(data, group)
    return from_mapping(cls, data, group)


GROUPS = {"geometry": GeometryConfig, "model": ColumnformerConfig, "task": TaskConfig,
          "data": DataConfig, "optim": OptimConfig, "train": TrainConfig,
          "wiring_cost": WiringCostConfig, "plasticity": PlasticityConfig, "migrate": MigrateConfig,
          "scale": ScaleConfig,
          "smoothness": SmoothnessConfig, "sparsity": SparsityConfig, "parallel": ParallelConfig}


def validate_config(cfg: Any, stored: bool = False) -> dict[str, Any]:
    """Check a whole composed config before any work: every group through its dataclass
    (types, ranges, unknown keys, among them a setting the chosen geometry or wiring rule
    does not read; hydra runs none of the ``__post_init__`` checks itself), settings that
    cannot take effect in the chosen combination (within a group and across groups), and
    the device. Every problem of every group is reported at once. Returns the dataclasses
    by group.

    ``stored=True``: a config read back from a checkpoint (see
    :func:`colgraph.validation.stored_config`): settings that cannot take effect are
    warned about instead of refused, so that runs saved before a check existed load.
    """
    import contextlib

    from .validation import stored_config

    data = upgrade_config(cfg if isinstance(cfg, dict) else to_container(cfg))
    problems, out = [], {}
    unknown = sorted(set(data) - set(GROUPS) - set(RENAMED) - {"device"})
    if unknown:
        problems.append(f"Unknown top-level key(s) {', '.join(unknown)}. Choices: "
                        f"{', '.join([*GROUPS, 'device'])}.")
    with stored_config() if stored else contextlib.nullcontext():
        for group, cls in GROUPS.items():
            if group not in data:
                continue
            try:
                out[group] = from_node(cls, data[group], group)
            except (TypeError, ValueError) as e:
                problems += problems_of(e)
        try:
            _check_across_groups(out)
        except ValueError as e:
            problems += problems_of(e)
    try:
        _check_device(data.get("device", "auto"))
    except ValueError as e:
        problems.append(str(e))
    _raise_all(problems)
    return out


def check_geometry(checked: dict[str, Any], geometry: Any, resumed: bool = False) -> None:
    """The settings of a validated config (``checked``: :func:`validate_config`'s result)
    that cannot take effect on the sheet ``geometry`` builds: ``model.sharing=groups``
    whose areas make one group (full sharing) or one group per column (no sharing), a
    plasticity schedule that cannot grow the edges it drops or asks for more edges than
    the sheet can hold. Every problem at once; run as soon as the geometry is built,
    before data is loaded. ``resumed``: the model settings are the resumed run's own (it
    cannot change them), so a model setting is warned about, not refused."""
    import contextlib

    import torch

    from .model import column_groups
    from .validation import stored_config

    model, plasticity = checked.get("model"), checked.get("plasticity")
    N = geometry.num_columns
    try:
        with Checks() as check:
            if model is not None and model.sharing == "groups" and N > 1:
                groups = int(torch.unique(column_groups(geometry)).numel())
                same = {1: "full", N: "none"}.get(groups)
                split = "one group of all" if groups == 1 else "one group per column of"
                with stored_config("The resumed run") if resumed else contextlib.nullcontext():
                    check.unread(same is not None,
                                 f"model.sharing=groups shares weights per area, but the "
                                 f"areas of {geometry} ({', '.join(geometry.areas)}) make "
                                 f"{split} its {N} columns: the same as model.sharing={same}. Use "
                                 f"model.sharing={same}, or a geometry whose areas split the "
                                 f"sheet (e.g. geometry=stack).")
            if plasticity is not None:
                index = geometry.edge_index
                check(plasticity.check_room, N, index.size(1),
                      int((index[0] == index[1]).sum()))
            migrate = checked.get("migrate")
            if migrate is not None and migrate.enabled:
                missing = [a for a in migrate.pinned if a not in geometry.areas]
                check.refuse(bool(missing),
                             f"migrate.pinned names area(s) {', '.join(missing)} that "
                             f"{geometry} does not have. Its areas: "
                             f"{', '.join(sorted(geometry.areas)) or '(none)'}.")
                pinned = torch.zeros(N, dtype=torch.bool)
                for a in set(migrate.pinned) - set(missing):
                    pinned[geometry.area(a)] = True
                check.refuse(N < 2 or bool(pinned.all()),
                             f"migrate.pinned={list(migrate.pinned)} leaves no column of "
                             f"{geometry} free to move ({N} columns, {int(pinned.sum())} "
                             f"pinned): pin fewer areas or set migrate.every=0.")
    except ValueError as e:
        _raise_all(problems_of(e))


def _raise_all(problems: list[str]) -> None:
    if problems:
        head = "The config has a problem" if len(problems) == 1 else \
            f"The config has {len(problems)} problems"
        raise ValueError(head + ":\n  - " + "\n  - ".join(problems))


def _check_across_groups(groups: dict[str, Any]) -> None:
    """Settings of one group that the choice in another makes unread (the groups that
    passed their own checks)."""
    model, task, train = (groups.get(g) for g in ("model", "task", "train"))
    plasticity, scale = groups.get("plasticity"), groups.get("scale")
    parallel = groups.get("parallel")
    with Checks() as check:
        if parallel is not None and parallel.columns > 1:  # not on a sharded sheet yet
            sharded = f"on a column-sharded sheet (parallel.columns={parallel.columns})"
            check.refuse(scale is not None and scale.area is not None,
                         f"scale.area (adding columns) is refused {sharded}: the partition "
                         f"would have to move. Grow the sheet with parallel.columns=1.")
        if model is not None and task is not None:
            check.unread(task.name == "predict_sequence" and model.inject == "every",
                         "model.inject=every has no effect with task=predict_sequence: frame "
                         "t enters the input area at step t whatever model.inject says. Drop "
                         "model.inject.")
        limit = train.max_steps if train is not None else None
        if limit is not None and plasticity is not None and plasticity.enabled:
            first = plasticity.start if plasticity.start > 0 else plasticity.every
            check.unread(first > limit,
                         f"plasticity={plasticity.name} first updates the edges at step "
                         f"{first} (plasticity.start={plasticity.start}, plasticity.every="
                         f"{plasticity.every}), after train.max_steps={limit}: no edge would "
                         f"change. Lower plasticity.every / plasticity.start, or use "
                         f"plasticity=none.")
        migrate = groups.get("migrate")
        if limit is not None and migrate is not None and migrate.enabled:
            first = migrate.start if migrate.start > 0 else migrate.every
            check.unread(first > limit or (migrate.stop is not None and first > migrate.stop),
                         f"migrate first moves columns at step {first} (migrate.start="
                         f"{migrate.start}, migrate.every={migrate.every}), after "
                         f"train.max_steps={limit} or migrate.stop={migrate.stop}: no column "
                         f"would move. Lower migrate.every / migrate.start.")
        if limit is not None and scale is not None and scale.area is not None:
            check.unread(scale.at_step > limit,
                         f"scale.at_step={scale.at_step} is after train.max_steps={limit}: "
                         f"the sheet would never grow. Lower scale.at_step or drop "
                         f"scale.area.")


def upgrade_config(cfg: Any) -> Any:
    """``cfg`` (a composed config or a plain dict; a copy, the argument is left alone) with
    the keys of renamed groups (:data:`RENAMED`: ``wiring.weight`` ->
    ``wiring_cost.weight``) moved to their new names, each with a ``FutureWarning``; a key
    set under both names, to different values, is refused."""
    import copy
    import warnings

    cfg = copy.deepcopy(cfg)
    for old, new in RENAMED.items():
        node = cfg.get(old) if hasattr(cfg, "get") else None
        if not node:
            continue
        for key in [k for k in node if node[k] is not None]:
            value = node[key]  # set explicitly (the old group's defaults are None): it wins
            warnings.warn(f"{old}.{key} is now called {new}.{key} ({old}.* was easily taken "
                          f"for the geometry's wiring rule, geometry.wiring.*): using "
                          f"{new}.{key}={value}. Rename it; the old name will go.",
                          FutureWarning, stacklevel=2)
            cfg[new][key], node[key] = value, None
    return cfg


def _check_device(name: Any) -> None:
    import torch

    if name == "auto":
        return
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:<index> (got {name!r}).") \
            from None
    if device.type not in ("cpu", "cuda", "mps", "xpu"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:<index> (got {name!r}).")


def to_container(cfg: Any) -> dict:
    """A plain-dict copy of a config (for checkpoints)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)
