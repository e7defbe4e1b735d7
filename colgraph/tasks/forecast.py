"""Next-frame prediction: the sheet as a recurrent model of a signal.

A sequence ``[B, C, L]`` is cut into ``T + 1`` consecutive frames of ``F = L / (T + 1)``
samples (``T`` = ``model.steps``). Frame ``t`` enters the input area at step ``t``, one
window per input column along the line / ring (as in sequence classification); after step
``t`` every output column reads out, through a shared LayerNorm + linear map, the window at
its own position in frame ``t + 1``: token regression, one prediction per output column and
step. The loss is the mean squared error over all steps and windows. The statistics also
give the error of persistence (frame ``t + 1`` predicted as frame ``t``), the baseline a
model of the signal has to beat.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..geometry import Geometry
from ..parallel.shard import ColumnShard
from ..model import Columnformer, ColumnformerConfig, ColumnformerOutput
from .base import Task, TaskOutput, register_task
from .encoders import InputMap, WindowEmbedding

__all__ = ["NextFramePrediction"]


@register_task
class NextFramePrediction(Task):
    """``task=predict_sequence``: predict each next frame of a signal, step by step."""

    name = "predict_sequence"
    modality = "sequence"
    settings = ("window",)
    stats = ("mse", "persistence_mse")
    metric, metric_label = "mse", "next-frame MSE"

    def __init__(self, geometry: Geometry, model: ColumnformerConfig, cfg: Any,
                 sample_shape: tuple[int, ...], num_classes: int,
                 shard: ColumnShard | None = None) -> None:
        super().__init__(geometry, model, cfg, sample_shape, num_classes, shard)
        c_in, length = sample_shape
        T = model.steps
        if length % (T + 1):
            raise ValueError(f"predict_sequence cuts each sequence into model.steps + 1 = "
                             f"{T + 1} frames, but the length {length} is not a multiple of "
                             f"{T + 1}. Choose model.steps so that steps + 1 divides {length}.")
        self.frame = length // (T + 1)
        self.encoder = WindowEmbedding(geometry, model.input_area, (c_in, self.frame),
                                       model.channels, cfg.window)
        self.columnformer = Columnformer(geometry, model, shard=self.column_shard)
        n_in, n_out = (geometry.area(a).numel() for a in (model.input_area, model.output_area))
        if n_out != n_in:
            raise ValueError(f"predict_sequence reads one window per output column: output "
                             f"area '{model.output_area}' has {n_out} columns but input area "
                             f"'{model.input_area}' has {n_in}. Use equal areas (line / ring "
                             f"geometries: both are the whole sheet).")
        # output column (in output-area order) -> the window slot it predicts, by position
        slot_of_out = InputMap.fit(geometry, model.output_area, (1, n_out)).patch_of_slot
        slot_of_in = self.encoder.window_of_slot
        self.register_buffer("input_slot_of_output",
                             torch.argsort(slot_of_in)[slot_of_out])
        self.norm = nn.LayerNorm(model.channels)
        self.decoder = nn.Linear(model.channels, c_in * self.encoder.window)

    def frames(self, x: Tensor) -> Tensor:
        """``[B, T + 1, C, F]``: the sequence cut into consecutive frames."""
        B, c, _ = x.shape
        return x.reshape(B, c, -1, self.frame).transpose(1, 2)

    def encode(self, x: Tensor) -> Tensor:
        """Frames ``0 .. T-1`` as tokens ``[B, T, N_in, C]``."""
        self.check_sample(x)
        f = self.frames(x)[:, :-1]  # (B, T, C, F)
        B, T = f.shape[:2]
        return self.encoder(f.flatten(0, 1)).unflatten(0, (B, T))

    def readout(self, out: ColumnformerOutput) -> Tensor:
        """Predicted windows ``[B, T, N_in, C * window]`` of frames ``1 .. T``, in input order
        (on a column-sharded sheet: of this process's output columns, in output-area
        order; see :meth:`predicted_slots`)."""
        pred = self.decoder(self.norm(out.outputs))  # (B, T, N_out, D) in output-area order
        if self.columnformer.shard.enabled:
            return pred
        return pred[:, :, torch.argsort(self.input_slot_of_output)]

    def predicted_slots(self) -> Tensor:
        """The input slots (window positions) :meth:`readout` predicts, in its order."""
        _, owned = self.columnformer.shard.owned(self.columnformer.output_index)
        if owned is None:
            return torch.arange(self.input_slot_of_output.numel(),
                                device=self.input_slot_of_output.device)
        return self.input_slot_of_output[owned]

    def targets(self, x: Tensor) -> Tensor:
        f = self.frames(x)  # (B, T + 1, C, F)
        B, T1 = f.shape[:2]
        return self.encoder.windows(f.flatten(0, 1)).unflatten(0, (B, T1))  # (B, T+1, N_in, D)

    def forward(self, x: Tensor, y: Tensor | None = None) -> TaskOutput:
        out = self.columnformer(self.encode(x))
        pred = self.readout(out)
        windows = self.targets(x)
        shard = self.columnformer.shard
        target = windows[:, 1:]
        if shard.enabled:  # this process's output columns
            target = target[:, :, self.predicted_slots()]
        err = shard.mean_over((pred - target).pow(2).flatten(1), 1,
                              windows[0, 1:].numel())  # (B,)
        persist = (windows[:, :-1] - windows[:, 1:]).pow(2).flatten(1).mean(1)
        return TaskOutput(err.mean(), {"mse": err.detach().sum(),
                                       "persistence_mse": persist.sum()}, pred, out)
