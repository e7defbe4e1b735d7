"""Structured configs: one dataclass per config group, registered in hydra's ConfigStore.

YAML variants live in ``configs/<group>/``; each starts from its group's schema
(``defaults: [base_<group>, _self_]``) so typos and wrong types fail at compose time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from .model import ColumnformerConfig
from .plasticity import PlasticityConfig

__all__ = ["WiringConfig", "GeometryConfig", "TaskConfig", "AugmentConfig", "DataConfig",
           "OptimConfig", "TrainConfig", "WiringCostConfig", "PlasticityConfig", "ScaleConfig",
           "SmoothnessConfig", "SparsityConfig", "Config", "register_configs", "from_node",
           "to_container"]


@dataclass
class WiringConfig:
    rule: str = "knn"  # knn | radius | full | exponential | uniform
    k: int = 16  # knn / uniform: incoming edges per column
    r: float = 1.5  # radius: connection distance
    long_range: int = 0  # extra exponential-distance-rule edges per column (0 = none)
    lam: float = 4.0  # exponential: length scale of P(length) ~ exp(-length / lam)
    seed: int = 0  # exponential / uniform: random seed
    self_loops: bool = False


@dataclass
class GeometryConfig:
    name: str = MISSING  # grid | torus | stack | sphere | ring | line | random | graph
    width: int = 8  # grid / torus
    height: int | None = None  # grid / torus; default = width
    widths: list[int] = field(default_factory=lambda: [8, 6, 4])  # stack: area widths
    spacing: float = 2.0  # stack: distance between areas
    inter: str = "knn"  # stack: knn | feedforward | bidirectional | all
    inter_k: int = 9  # stack: inter-area inputs per column (feedforward / bidirectional)
    n: int = 256  # sphere / ring / line / random: number of columns
    shape: str = "box"  # random: box | disc
    dim: int = 2  # random: dimensions
    size: float | None = None  # random: box side (default: unit density); sphere: radius
    seed: int = 0  # random: positions seed
    input_size: int = 64  # sphere / random: columns in the input area
    output_size: int = 16  # sphere / random: columns in the output area
    path: str | None = None  # graph: .graphml / .gml / edge-list .csv
    coords: str | None = None  # graph: coordinates CSV (node,x,y[,z][,area]) for a .csv
    wiring: WiringConfig = field(default_factory=WiringConfig)


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


@dataclass
class AugmentConfig:
    """Training-time augmentation (see :class:`colgraph.data.Augment`); off in evaluation."""

    shift: int = 0  # max translation in pixels / samples (zero fill): random crops
    flip: bool = False  # mirror left-right with probability 1/2
    scale: float = 0.0  # multiply by a factor in [1 - scale, 1 + scale]


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
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"data.test_fraction must be in (0, 1) (got {self.test_fraction}).")


@dataclass
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0  # max gradient norm; 0 disables
    fused: bool = False  # fused AdamW: no temporaries (a parameter copy less), ~10% slower


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

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"train.epochs and train.batch_size must be >= 1 (got "
                             f"{self.epochs}, {self.batch_size}).")
        if self.freeze not in ("none", "sheet"):
            raise ValueError(f"train.freeze must be 'none' or 'sheet' (got {self.freeze!r}).")


@dataclass
class WiringCostConfig:
    weight: float = 0.0  # weight of the wiring cost in the loss (0 = off)
    p: float = 1.0  # cost per edge = attention * length^p


@dataclass
class SmoothnessConfig:
    """Local contrastive feature-smoothness loss (see colgraph.objectives.smoothness_loss)."""

    weight: float = 0.0  # weight in the loss (0 = off; the smoothness measure is always logged)
    radius: float | None = None  # neighbours: edges no longer than this (None: median edge)
    temperature: float = 0.1
    negatives: int = 8  # random distant partners per column

    def __post_init__(self) -> None:
        if self.weight < 0 or self.temperature <= 0 or self.negatives < 1 or (
                self.radius is not None and self.radius <= 0):
            raise ValueError(f"smoothness needs weight >= 0, temperature > 0, negatives >= 1 "
                             f"and radius > 0 (got weight={self.weight}, temperature="
                             f"{self.temperature}, negatives={self.negatives}, radius="
                             f"{self.radius}).")


@dataclass
class SparsityConfig:
    """Scale-free L1 penalty on column states (see colgraph.model.Activity)."""

    weight: float = 0.0  # weight of mean|x| / RMS(x) in the loss (0 = off; always logged)

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"sparsity.weight must be >= 0 (got {self.weight}).")


@dataclass
class ScaleConfig:
    """Grow the sheet during training: make ``area`` ``factor`` times denser at ``at_step``."""

    area: str | None = None  # the lattice area to refine (None: never grow)
    at_step: int = 0  # optimizer step after which the new columns are added
    factor: int = 2  # lattice points per old spacing along each axis

    def __post_init__(self) -> None:
        if self.area is not None and (self.at_step < 1 or self.factor < 2):
            raise ValueError(f"scale.at_step must be >= 1 and scale.factor >= 2 (got "
                             f"{self.at_step}, {self.factor}).")


@dataclass
class Config:
    geometry: GeometryConfig = MISSING
    model: ColumnformerConfig = MISSING
    task: TaskConfig = MISSING
    data: DataConfig = MISSING
    optim: OptimConfig = MISSING
    train: TrainConfig = MISSING
    wiring: WiringCostConfig = field(default_factory=WiringCostConfig)
    plasticity: PlasticityConfig = field(default_factory=PlasticityConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    smoothness: SmoothnessConfig = field(default_factory=SmoothnessConfig)
    sparsity: SparsityConfig = field(default_factory=SparsityConfig)
    device: str = "auto"  # auto | cpu | cuda | cuda:1 | ...


def register_configs() -> None:
    """Register the schemas with hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for group, node in (("geometry", GeometryConfig), ("model", ColumnformerConfig),
                        ("task", TaskConfig), ("data", DataConfig), ("optim", OptimConfig), ("train", TrainConfig),
                        ("plasticity", PlasticityConfig)):
        cs.store(group=group, name=f"base_{group}", node=node)


def from_node(cls: type, node: Any, group: str) -> Any:
    """The dataclass ``cls`` from the config node of ``group``, refusing unknown keys (which
    hydra lets through with ``+group.key=...``) with the valid choices; ``cls``'s own
    ``__post_init__`` checks the values."""
    from dataclasses import fields

    data = to_container(node)
    names = sorted(f.name for f in fields(cls))
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"Unknown key(s) {', '.join(f'{group}.{k}' for k in unknown)}. "
                         f"Choices: {', '.join(names)}.")
    return cls(**data)


def to_container(cfg: Any) -> dict:
    """A plain-dict copy of a config (for checkpoints)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)
