"""Classification: samples -> tokens -> Columnformer -> output-area states, pooled over the
output columns (mean, or max: "is the pattern anywhere") -> LayerNorm -> linear -> logits
``[B, classes]``; cross-entropy loss (``task.label_smoothing`` optional), accuracy."""
from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..geometry import Geometry
from ..parallel.shard import ColumnShard
from ..model import Columnformer, ColumnformerConfig, ColumnformerOutput
from .base import Task, TaskOutput, register_task
from .encoders import PatchEmbedding, WindowEmbedding

__all__ = ["ImageClassification", "SequenceClassification", "POOLS"]

POOLS = ("mean", "max")


class Classification(Task):
    """Pooled readout of the output area; the subclass makes ``self.encoder``."""

    stats = ("acc",)
    metric, metric_label = "acc", "accuracy"

    def _build(self, geometry: Geometry, model: ColumnformerConfig, encoder: nn.Module,
               cfg: Any) -> None:
        pool, smoothing = cfg.pool, float(cfg.label_smoothing)
        if pool not in POOLS:
            raise ValueError(f"Unknown task.pool '{pool}'. Choices: {', '.join(POOLS)}.")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"task.label_smoothing must be in [0, 1) (got {smoothing}); 0.1 "
                             f"is a common choice, 0 turns it off.")
        self.pool, self.label_smoothing = pool, smoothing
        self.encoder = encoder  # built first: parameter initialisation order is part of a seed
        self.columnformer = Columnformer(geometry, model, shard=self.column_shard)
        self.norm = nn.LayerNorm(model.channels)
        self.head = nn.Linear(model.channels, self.num_classes)

    def encode(self, x: Tensor) -> Tensor:
        self.check_sample(x)
        return self.encoder(x)

    def readout(self, out: ColumnformerOutput) -> Tensor:
        shard = self.columnformer.shard  # pooled over every process's output columns
        if self.pool == "mean":
            pooled = shard.mean_over(out.output, 1, self.columnformer.output_index.numel())
        else:
            pooled = shard.amax(out.output, 1)
        return self.head(self.norm(pooled))  # (B, classes)

    def forward(self, x: Tensor, y: Tensor) -> TaskOutput:
        out = self.sheet(x)
        logits = self.readout(out)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        return TaskOutput(loss, {"acc": (logits.argmax(1) == y).sum()}, logits, out)


@register_task
class ImageClassification(Classification):
    """Images, one patch per input column, placed retinotopically (``task=classify_image``)."""

    name = "classify_image"
    modality = "image"
    settings = ("patch_size", "pool", "label_smoothing")

    def __init__(self, geometry: Geometry, model: ColumnformerConfig, cfg: Any,
                 sample_shape: tuple[int, ...], num_classes: int,
                 shard: ColumnShard | None = None) -> None:
        super().__init__(geometry, model, cfg, sample_shape, num_classes, shard)
        self._build(geometry, model, PatchEmbedding(geometry, model.input_area, sample_shape,
                                                    model.channels, cfg.patch_size), cfg)


@register_task
class SequenceClassification(Classification):
    """Sequences ``[B, C, L]``, one window per input column along the line / ring
    (``task=classify_sequence``)."""

    name = "classify_sequence"
    modality = "sequence"
    settings = ("window", "pool", "label_smoothing")

    def __init__(self, geometry: Geometry, model: ColumnformerConfig, cfg: Any,
                 sample_shape: tuple[int, ...], num_classes: int,
                 shard: ColumnShard | None = None) -> None:
        super().__init__(geometry, model, cfg, sample_shape, num_classes, shard)
        self._build(geometry, model, WindowEmbedding(geometry, model.input_area, sample_shape,
                                                     model.channels, cfg.window), cfg)
