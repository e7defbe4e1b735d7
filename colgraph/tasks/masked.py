"""Masked image modelling: hide a fraction of the input patches and predict their pixels.

A random ``mask_ratio`` of each image's patches is replaced by a learned mask token before
it enters the input area; after the sheet's ``T`` steps, the states of the columns where the
patches entered (or of a ``decoder_area`` of the same size, in the same retinotopic order)
go through LayerNorm and a linear decoder to ``C_img * p * p`` pixels per patch. The loss is
the mean squared error on the masked patches only; ``norm_pix`` makes each target patch
zero-mean, unit-variance first (as in MAE). Training masks come from torch's global
generator (checkpointed); evaluation masks from a fixed seed, so test losses compare across
epochs and runs.

A pre-trained sheet is then fine-tuned or linearly probed on classification with
``train.init_from=RUN_DIR`` (and ``train.freeze=sheet`` for a probe).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..geometry import Geometry
from ..parallel.shard import ColumnShard
from ..model import Columnformer, ColumnformerConfig, ColumnformerOutput
from .base import Task, TaskOutput, register_task
from .encoders import InputMap, PatchEmbedding

__all__ = ["MaskedImageModelling", "random_mask"]

EVAL_MASK_SEED = 0


def random_mask(batch: int, n: int, ratio: float, generator: torch.Generator | None = None,
                device: torch.device | None = None) -> Tensor:
    """``[batch, n]`` bool, exactly ``round(ratio * n)`` (at least 1) True per row."""
    k = max(1, round(ratio * n))
    noise = torch.rand(batch, n, generator=generator).to(device)
    rank = noise.argsort(1).argsort(1)
    return rank < k


@register_task
class MaskedImageModelling(Task):
    """Self-supervised pre-training of the sheet (``task=masked_image``)."""

    name = "masked_image"
    modality = "image"
    settings = ("patch_size", "mask_ratio", "norm_pix", "decoder_area")
    stats = ("mse",)
    metric, metric_label = "mse", "masked-patch MSE"

    def __init__(self, geometry: Geometry, model: ColumnformerConfig, cfg: Any,
                 sample_shape: tuple[int, ...], num_classes: int,
                 shard: ColumnShard | None = None) -> None:
        super().__init__(geometry, model, cfg, sample_shape, num_classes, shard)
        if not 0.0 < cfg.mask_ratio < 1.0:
            raise ValueError(f"task.mask_ratio must be in (0, 1) (got {cfg.mask_ratio}): the "
                             f"fraction of patches hidden from the sheet.")
        self.mask_ratio, self.norm_pix = float(cfg.mask_ratio), bool(cfg.norm_pix)
        self.encoder = PatchEmbedding(geometry, model.input_area, sample_shape, model.channels,
                                      cfg.patch_size)
        self.columnformer = Columnformer(geometry, model, shard=self.column_shard)
        self.mask_token = nn.Parameter(torch.zeros(model.channels))
        nn.init.normal_(self.mask_token, std=0.02)
        area = cfg.decoder_area or model.input_area
        n_in, n_dec = geometry.area(model.input_area).numel(), geometry.area(area).numel()
        if n_dec != n_in:
            raise ValueError(f"task.decoder_area='{area}' has {n_dec} columns but the input "
                             f"area has {n_in}: the decoder area needs one column per patch.")
        self.decoder_area = area
        # decoder column j (in retinotopic order) predicts patch j; tokens are in input-area
        # order, so map decoder slots to input slots through the patch index
        patch_of_input = self.encoder.patch_of_slot
        patch_of_dec = InputMap.fit(geometry, area, self.encoder.grid_shape).patch_of_slot
        dec_cols = geometry.area(area)[torch.argsort(patch_of_dec)]  # patch p -> column
        self.register_buffer("decoder_columns", dec_cols[patch_of_input])  # input slot -> col
        c_img = sample_shape[0]
        p = self.encoder.patch_size
        if self.norm_pix and c_img * p * p < 2:
            raise ValueError(f"task.norm_pix=true normalises each target patch, but patches "
                             f"here hold {c_img * p * p} value: set task.norm_pix=false or use "
                             f"larger patches (task.patch_size).")
        self.norm = nn.LayerNorm(model.channels)
        self.decoder = nn.Linear(model.channels, c_img * p * p)

    def mask(self, batch: int, device: torch.device) -> Tensor:
        gen = None if self.training else torch.Generator().manual_seed(EVAL_MASK_SEED)
        return random_mask(batch, self.encoder.patch_of_slot.numel(), self.mask_ratio, gen,
                           device)

    def encode(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Tokens with the masked patches replaced by the mask token (a fresh mask if none
        is given)."""
        self.check_sample(x)
        tokens = self.encoder(x)  # (B, N_in, C)
        mask = self.mask(x.size(0), x.device) if mask is None else mask
        return torch.where(mask.unsqueeze(-1), self.mask_token.to(tokens.dtype), tokens)

    def readout(self, out: ColumnformerOutput) -> Tensor:
        """Predicted pixels ``[B, N_in, C_img * p * p]`` in input-area order (of the
        patches whose decoder columns this process owns, on a column-sharded sheet)."""
        rows, _ = self.columnformer.shard.owned(self.decoder_columns)
        return self.decoder(self.norm(out.state[:, rows]))

    def forward(self, x: Tensor, y: Tensor | None = None) -> TaskOutput:
        mask = self.mask(x.size(0), x.device)  # (B, N_in)
        out = self.columnformer(self.encode(x, mask))
        pred = self.readout(out)
        target = self.encoder.patches(x)  # (B, N_in, D)
        shard = self.columnformer.shard
        _, slots = shard.owned(self.decoder_columns)
        if slots is not None:  # a column-sharded sheet: the patches this process decodes
            target, mask = target[:, slots], mask[:, slots]
        if self.norm_pix:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        err = (pred - target).pow(2).mean(-1)  # (B, N_in)
        m = mask.to(err.dtype)
        per_sample = shard.sum((err * m).sum(1)) / shard.sum(m.sum(1))  # masked patches only
        return TaskOutput(per_sample.mean(), {"mse": per_sample.detach().sum()}, pred, out)
