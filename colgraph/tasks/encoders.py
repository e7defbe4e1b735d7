"""Encoders: samples -> one token per input-area column, placed by position.

Images are cut into non-overlapping square patches (a linear embedding per patch, i.e. a
convolution with stride = kernel) and patch ``p`` (row-major) goes to the ``p``-th input
column in position order (second coordinate, then first: row-major for grids and stacks):
retinotopy. Sequences are cut into non-overlapping windows along their length and window
``i`` goes to the ``i``-th input column along the line / ring.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..geometry import Geometry

__all__ = ["retinotopic_order", "PatchEmbedding", "WindowEmbedding", "patch_size_for",
           "window_for"]


def retinotopic_order(geometry: Geometry, area: str) -> Tensor:
    """Slot of each input-area column for row-major patches: ``tokens[:, order]``."""
    pos = geometry.pos[geometry.area(area)]
    x = pos[:, 0].numpy()
    y = pos[:, 1].numpy() if pos.size(1) > 1 else 0 * x
    row_major = torch.from_numpy(np.lexsort((x.round(6), y.round(6))))  # patch p -> column slot
    return torch.argsort(row_major)  # column slot j -> patch index


def patch_size_for(h: int, w: int, n_in: int, patch_size: int | None, area: str) -> int:
    """The patch side: ``patch_size`` if given, else the one that gives the input area one
    patch per column; a clear error when none does."""
    if patch_size is None:
        fits = [p for p in range(1, min(h, w) + 1)
                if h % p == 0 and w % p == 0 and (h // p) * (w // p) == n_in]
        if not fits:
            raise ValueError(
                f"No square patch size cuts {h}x{w} images into {n_in} patches, one per "
                f"column of input area '{area}'. Give the input area (h/p)x(w/p) columns for "
                f"some p dividing {h} and {w} (e.g. {h}x{w} for p=1), or set task.patch_size.")
        return fits[0]
    gh, gw = (h // patch_size, w // patch_size) if patch_size >= 1 else (0, 0)
    if patch_size < 1 or h % patch_size or w % patch_size:
        raise ValueError(f"task.patch_size={patch_size} must divide the image size {h}x{w}.")
    if gh * gw != n_in:
        raise ValueError(
            f"The task makes {gh}x{gw} = {gh * gw} patches ({h}x{w} images, "
            f"patch_size={patch_size}) but input area '{area}' has {n_in} "
            f"columns. Give the input area one column per patch (e.g. a stack whose "
            f"first width is {gh}: geometry.widths=[{gh},...]) or change task.patch_size "
            f"(null fits it to the input area).")
    return patch_size


def _check_lattice(geometry: Geometry, area: str, grid: tuple[int, int],
                   image: tuple[int, int]) -> None:
    """An input area laid out as a rows x columns lattice must have the patch grid's shape:
    a 16 x 4 area for an 8 x 8 patch grid would take the right number of patches, in the
    wrong places (neighbouring pixels on far-apart columns)."""
    pos = geometry.pos[geometry.area(area)]
    if pos.size(1) < 2:
        return
    cols = torch.unique(pos[:, 0].round(decimals=6)).numel()
    rows = torch.unique(pos[:, 1].round(decimals=6)).numel()
    if rows * cols == pos.size(0) and (rows, cols) != grid:
        raise ValueError(f"Input area '{area}' is a {rows} x {cols} lattice (rows x columns) "
                         f"but {image[0]}x{image[1]} images make a {grid[0]} x {grid[1]} grid "
                         f"of patches: the patches would land scrambled. Give the input area "
                         f"the patch grid's shape (e.g. geometry.width={grid[1]} "
                         f"geometry.height={grid[0]}) or change task.patch_size.")


class PatchEmbedding(nn.Module):
    """Images ``[B, C_img, H, W]`` -> tokens ``[B, N_in, C]``, one patch per input column.

    ``patches(images)`` gives the raw pixels ``[B, N_in, C_img * p * p]`` in the same order
    (targets for masked image modelling).
    """

    def __init__(self, geometry: Geometry, area: str, image_shape: tuple[int, int, int],
                 channels: int, patch_size: int | None = None) -> None:
        super().__init__()
        c_img, h, w = image_shape
        n_in = geometry.area(area).numel()
        p = patch_size_for(h, w, n_in, patch_size, area)
        self.patch_size, self.grid_shape = p, (h // p, w // p)
        _check_lattice(geometry, area, self.grid_shape, (h, w))
        self.proj = nn.Conv2d(c_img, channels, p, stride=p)  # a linear map per patch
        self.register_buffer("patch_of_slot", retinotopic_order(geometry, area))

    def forward(self, images: Tensor) -> Tensor:
        tokens = self.proj(images).flatten(2).transpose(1, 2)  # (B, P, C) row-major
        return tokens[:, self.patch_of_slot]  # (B, N_in, C) in input-area order

    def patches(self, images: Tensor) -> Tensor:
        p = self.patch_size
        B, c, h, w = images.shape
        x = images.reshape(B, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(B, (h // p) * (w // p), c * p * p)[:, self.patch_of_slot]


def window_for(length: int, n_in: int, window: int | None, area: str) -> int:
    """The window length: ``window`` if given, else ``length / n_in``; a clear error when
    the windows do not give the input area one window per column."""
    w = window if window is not None else (length // n_in if length % n_in == 0 else 0)
    if w < 1 or length % w or length // w != n_in:
        given = f"task.window={window} makes {length // window if window and window > 0 else 0}" \
            if window is not None else "no window length cuts them into"
        raise ValueError(
            f"Sequences of length {length}: {given} windows, but input area '{area}' has "
            f"{n_in} columns. Use a geometry with {length} / window input columns (e.g. "
            f"geometry=line geometry.n={length}) or set task.window to a divisor of {length} "
            f"that gives {n_in} windows.")
    return w


class WindowEmbedding(nn.Module):
    """Sequences ``[B, C_in, L]`` -> tokens ``[B, N_in, C]``: non-overlapping windows, one per
    input column in position order along the line / ring (a linear map per window)."""

    def __init__(self, geometry: Geometry, area: str, sample_shape: tuple[int, int],
                 channels: int, window: int | None = None) -> None:
        super().__init__()
        c_in, length = sample_shape
        self.window = window_for(length, geometry.area(area).numel(), window, area)
        self.proj = nn.Conv1d(c_in, channels, self.window, stride=self.window)
        self.register_buffer("window_of_slot", retinotopic_order(geometry, area))

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).transpose(1, 2)[:, self.window_of_slot]  # (B, N_in, C)

    def windows(self, x: Tensor) -> Tensor:
        """Raw values ``[B, N_in, C_in * window]`` in the tokens' order."""
        B, c, length = x.shape
        w = self.window
        x = x.reshape(B, c, length // w, w).permute(0, 2, 1, 3).reshape(B, length // w, c * w)
        return x[:, self.window_of_slot]
