"""Vision classification on a column sheet.

image ``[B, C_img, H, W]`` -> non-overlapping patches -> linear patch embedding ``[B, P, C]``
-> the input-area column at the patch's grid position (retinotopic) -> Columnformer ->
output-area states, mean-pooled -> LayerNorm -> linear -> logits ``[B, classes]``.

Retinotopy: input-area columns are ordered by position (second coordinate, then first:
row-major for grid and stack geometries) and patch ``p`` (row-major) goes to the ``p``-th.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..geometry import Geometry
from ..model import Columnformer, ColumnformerConfig, ColumnformerOutput

__all__ = ["VisionClassifier", "retinotopic_order"]


def retinotopic_order(geometry: Geometry, area: str) -> Tensor:
    """Slot of each input-area column for row-major patches: ``tokens[:, order]``."""
    pos = geometry.pos[geometry.area(area)]
    x = pos[:, 0].numpy()
    y = pos[:, 1].numpy() if pos.size(1) > 1 else 0 * x
    import numpy as np

    row_major = torch.from_numpy(np.lexsort((x.round(6), y.round(6))))  # patch p -> column slot
    return torch.argsort(row_major)  # column slot j -> patch index


class VisionClassifier(nn.Module):
    """Patch embedding + Columnformer + pooled readout.

    Args:
        geometry: the sheet's geometry; its input area needs one column per patch.
        config: the Columnformer's config.
        image_shape: ``(C_img, H, W)``.
        patch_size: side of the square patches.
        num_classes: number of classes.
    """

    def __init__(self, geometry: Geometry, config: ColumnformerConfig,
                 image_shape: tuple[int, int, int], patch_size: int, num_classes: int) -> None:
        super().__init__()
        c_img, h, w = image_shape
        if patch_size < 1 or h % patch_size or w % patch_size:
            raise ValueError(f"task.patch_size={patch_size} must divide the image size "
                             f"{h}x{w}.")
        gh, gw = h // patch_size, w // patch_size
        n_in = geometry.area(config.input_area).numel()
        if gh * gw != n_in:
            raise ValueError(
                f"The task makes {gh}x{gw} = {gh * gw} patches ({h}x{w} images, "
                f"patch_size={patch_size}) but input area '{config.input_area}' has {n_in} "
                f"columns. Give the input area one column per patch (e.g. a stack whose "
                f"first width is {gh}: geometry.widths=[{gh},...]) or change task.patch_size.")
        C = config.channels
        self.patch_size, self.grid_shape = patch_size, (gh, gw)
        self.patch_embed = nn.Conv2d(c_img, C, patch_size, stride=patch_size)  # linear per patch
        self.register_buffer("patch_of_slot", retinotopic_order(geometry, config.input_area))
        self.columnformer = Columnformer(geometry, config)
        self.norm = nn.LayerNorm(C)
        self.head = nn.Linear(C, num_classes)

    def forward(self, images: Tensor) -> tuple[Tensor, ColumnformerOutput]:
        if images.dim() != 4 or images.size(1) != self.patch_embed.in_channels:
            raise ValueError(f"Expected images of shape [B, {self.patch_embed.in_channels}, H, W],"
                             f" got {list(images.shape)}.")
        tokens = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, P, C) row-major
        tokens = tokens[:, self.patch_of_slot]  # (B, N_in, C) in input-area order
        out = self.columnformer(tokens)
        logits = self.head(self.norm(out.output.mean(1)))  # (B, classes)
        return logits, out
