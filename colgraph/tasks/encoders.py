"""Encoders: samples -> one token per input-area column, placed by position.

Images are cut into non-overlapping square patches (a linear embedding per patch, i.e. a
convolution with stride = kernel) and each patch goes to the input column nearest to it once
the patch grid is fitted to the input area's extent (:class:`InputMap`; exact on lattices
of the grid's shape, an explicit ``input_map`` node attribute overrides it, a warning when
the map tears neighbourhoods apart): retinotopy. Sequences are cut into non-overlapping
windows along their length and window ``i`` goes to the ``i``-th input column along the
line / ring.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..geometry import Geometry, plane_axes

__all__ = ["InputMap", "PatchEmbedding", "WindowEmbedding", "patch_size_for",
           "window_for"]


#: above this many patches the optimal one-to-one assignment (O(P^3), 4.4 s at 4096) is
#: replaced by row binning (O(P log P), exact for row-structured areas)
MAX_ASSIGNMENT = 4096
#: warn when this share of adjacent patch pairs lands more than STRETCH_WARN spacings apart
STRETCH_WARN, STRETCH_SHARE = 2.0, 0.10


def _plane(pos: Tensor) -> Tensor:
    """The two coordinates an area is laid out in: ``[n, 2]`` (the two with the largest
    spread for 3-D areas, axis-aligned so that a stack's layer maps without rotation; a zero
    second coordinate for 1-D ones)."""
    pos = pos.double()
    if pos.size(1) == 1:
        return torch.cat([pos, torch.zeros_like(pos)], 1)
    return pos[:, plane_axes(pos)]


def _patch_centres(plane: Tensor, grid: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Centres of the ``rows x cols`` patch grid fitted to the extent of ``plane`` (row 0 at
    the smallest second coordinate, column 0 at the smallest first), row-major ``[P, 2]``,
    and the fitted spacing per axis (0 along an axis with one patch)."""
    rows, cols = grid
    lo, hi = plane.min(0).values, plane.max(0).values
    axes, spacing = [], []
    for n, a, b in ((cols, lo[0], hi[0]), (rows, lo[1], hi[1])):
        axes.append(torch.linspace(a, b, n, dtype=plane.dtype) if n > 1
                    else ((a + b) / 2).reshape(1))
        spacing.append(float(b - a) / (n - 1) if n > 1 else 0.0)
    yy, xx = torch.meshgrid(axes[1], axes[0], indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], 1), torch.tensor(spacing)


@dataclass
class InputMap:
    """Which patch of a ``rows x cols`` patch grid (row-major index) each column of an area
    receives: retinotopy.

    ``patch_of_slot[j]`` is the patch of the ``j``-th column of the area (area order). Built
    by :meth:`fit`; ``method`` says how: ``"input_map"`` (the geometry's explicit
    ``input_map`` node attribute), ``"order"`` (1-D areas: along the line / ring),
    ``"nearest"`` (used when none of the area's columns has one; patch grid fitted to the area's extent, then the one-to-one assignment of
    patches to columns with the least total squared distance) or ``"rows"`` (more than
    :data:`MAX_ASSIGNMENT` patches: columns binned into rows by the second coordinate, then
    ordered by the first).
    """

    geometry: Geometry
    area: str
    grid: tuple[int, int]
    patch_of_slot: Tensor
    method: str

    @classmethod
    def fit(cls, geometry: Geometry, area: str, grid: tuple[int, int]) -> "InputMap":
        cols = geometry.area(area)
        n, P = cols.numel(), grid[0] * grid[1]
        if n != P:
            raise ValueError(f"A {grid[0]} x {grid[1]} grid of patches needs {P} columns in "
                             f"area '{area}', which has {n}.")
        given = None if geometry.input_map is None else geometry.input_map[cols.cpu()]
        if given is not None and (given >= 0).any():
            if not torch.equal(torch.sort(given).values, torch.arange(P)):
                bad = sorted(set(range(P)) - set(given.tolist()))[:5]
                raise ValueError(
                    f"The geometry's input_map gives the {n} columns of area '{area}' the "
                    f"patches {sorted(given.tolist())[:8]}...; expected each patch 0 .. "
                    f"{P - 1} of the {grid[0]} x {grid[1]} patch grid (row-major) exactly "
                    f"once (missing e.g. {bad}). Fix the input_map node attribute, or "
                    f"remove it to map by position.")
            return cls(geometry, area, grid, given.clone(), "input_map")
        pos = geometry.pos[cols].cpu()
        if pos.size(1) == 1:
            order = torch.argsort(_plane(pos)[:, 0], stable=True)  # slot order along the line
            return cls(geometry, area, grid, torch.argsort(order), "order")
        plane = _plane(pos)
        if P > MAX_ASSIGNMENT:
            by_row = torch.argsort(plane[:, 1], stable=True).view(grid[0], grid[1])
            within = torch.argsort(plane[by_row, 0], dim=1, stable=True)
            slot_of_patch = torch.gather(by_row, 1, within).flatten()
            method = "rows"
        else:
            from scipy.optimize import linear_sum_assignment
            from scipy.spatial.distance import cdist

            centres, _ = _patch_centres(plane, grid)
            patch, slot = linear_sum_assignment(cdist(centres.numpy(), plane.numpy(),
                                                      "sqeuclidean"))
            slot_of_patch = torch.from_numpy(slot[np.argsort(patch)])
            method = "nearest"
        return cls(geometry, area, grid, torch.argsort(slot_of_patch), method)

    @property
    def column_of_patch(self) -> Tensor:
        """The geometry's column index that receives each patch (row-major) ``[P]``."""
        return self.geometry.area(self.area)[torch.argsort(self.patch_of_slot)]

    def stretch(self) -> Tensor:
        """For each pair of adjacent patches (right and down neighbours), the distance
        between the columns they land on in units of the patch grid's spacing fitted to the
        area (1 everywhere on a lattice of the grid's shape)."""
        rows, cols = self.grid
        plane = _plane(self.geometry.pos[self.column_of_patch].cpu()).view(rows, cols, 2)
        _, spacing = _patch_centres(plane.view(-1, 2), self.grid)
        out = []
        for axis, step in ((1, spacing[0]), (0, spacing[1])):  # along a row, down a column
            if step > 0:
                a = plane.narrow(axis, 0, plane.size(axis) - 1)
                b = plane.narrow(axis, 1, plane.size(axis) - 1)
                out.append(((b - a).norm(dim=-1) / step).flatten())
        return torch.cat(out).float() if out else torch.ones(0)

    def summary(self) -> str:
        s = self.stretch()
        if not s.numel():
            return f"input map of '{self.area}' ({self.method})"
        return (f"input map of '{self.area}' ({self.grid[0]} x {self.grid[1]} patches, "
                f"{self.method}): adjacent patches land {float(s.median()):.2f} (median), "
                f"{float(s.max()):.2f} (max) patch spacings apart")

    def warn_if_distorted(self) -> None:
        """A warning when the map tears neighbourhoods apart (more than
        :data:`STRETCH_SHARE` of adjacent patch pairs over :data:`STRETCH_WARN` spacings)."""
        s = self.stretch()
        if s.numel() and float((s > STRETCH_WARN).float().mean()) > STRETCH_SHARE:
            warnings.warn(
                f"The {self.summary()}: {100 * float((s > STRETCH_WARN).float().mean()):.0f}% "
                f"of neighbouring patches land more than {STRETCH_WARN:g} spacings apart: the "
                f"map distorts the image's neighbourhoods. Give area '{self.area}' a layout closer to the "
                f"{self.grid[0]} x {self.grid[1]} patch grid, or set an explicit input_map "
                f"node attribute (patch index per column). analyze.py draws the map "
                f"(input_map.png).", stacklevel=3)

    def plot(self, ax=None, path=None):
        """The patch grid drawn through the columns it lands on: each patch's column joined
        to its right and lower neighbours' (a regular mesh = an undistorted map), columns
        coloured by patch index."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.collections import LineCollection

        rows, cols = self.grid
        plane = _plane(self.geometry.pos[self.column_of_patch].cpu()).float()
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 5.5))
        grid_xy = plane.view(rows, cols, 2)
        segs = [torch.stack([grid_xy[:, :-1], grid_xy[:, 1:]], -2).reshape(-1, 2, 2),
                torch.stack([grid_xy[:-1], grid_xy[1:]], -2).reshape(-1, 2, 2)]
        ax.add_collection(LineCollection(torch.cat(segs).numpy(), colors="0.5",
                                         linewidths=0.6))
        sc = ax.scatter(plane[:, 0].numpy(), plane[:, 1].numpy(), c=np.arange(rows * cols),
                        cmap="viridis", s=18, zorder=2)
        ax.figure.colorbar(sc, ax=ax, label="patch index (row-major)")
        s = self.stretch()
        title = f"input map: area '{self.area}', {rows} x {cols} patches ({self.method})"
        if s.numel():
            title += (f"\nneighbour stretch median {float(s.median()):.2f}, "
                      f"max {float(s.max()):.2f} spacings")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("column position (first layout axis)")
        ax.set_ylabel("column position (second layout axis)")
        ax.set_aspect("equal", adjustable="datalim")
        ax.autoscale_view()
        if path is not None:
            ax.figure.tight_layout()
            ax.figure.savefig(path, dpi=120)
        return ax


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
        given = geometry.input_map
        if given is None or (given[geometry.area(area).cpu()] < 0).all():
            _check_lattice(geometry, area, self.grid_shape, (h, w))
        self.geometry, self.area = geometry, area
        fitted = InputMap.fit(geometry, area, self.grid_shape)
        fitted.warn_if_distorted()
        self.method = fitted.method
        self.proj = nn.Conv2d(c_img, channels, p, stride=p)  # a linear map per patch
        # a buffer, so a loaded model keeps the map it was trained with
        self.register_buffer("patch_of_slot", fitted.patch_of_slot)

    def input_map(self) -> InputMap:
        """The patch -> column map in use (``.plot()``, ``.stretch()``, ``.summary()``)."""
        return InputMap(self.geometry, self.area, self.grid_shape, self.patch_of_slot.cpu(),
                        self.method)

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
        n_in = geometry.area(area).numel()
        self.window = window_for(length, n_in, window, area)
        fitted = InputMap.fit(geometry, area, (1, n_in))
        fitted.warn_if_distorted()
        self.proj = nn.Conv1d(c_in, channels, self.window, stride=self.window)
        self.register_buffer("window_of_slot", fitted.patch_of_slot)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).transpose(1, 2)[:, self.window_of_slot]  # (B, N_in, C)

    def windows(self, x: Tensor) -> Tensor:
        """Raw values ``[B, N_in, C_in * window]`` in the tokens' order."""
        B, c, length = x.shape
        w = self.window
        x = x.reshape(B, c, length // w, w).permute(0, 2, 1, 3).reshape(B, length // w, c * w)
        return x[:, self.window_of_slot]
