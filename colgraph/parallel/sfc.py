"""A space-filling-curve (Hilbert) order of column positions: nearby columns get nearby
places in the order, so contiguous pieces of it are compact patches of the sheet.

Symbols: ``N`` columns, ``D`` spatial dimensions, ``b`` bits per axis.

Hand-written (no dependency) because no maintained library computes Hilbert indices of 10^6
points at once: the pure-Python packages (``hilbertcurve``, ``numpy-hilbert-curve``) either loop
over the points in Python or cap the key width; this is Skilling's transpose algorithm
("Programming the Hilbert curve", AIP Conf. Proc. 707, 2004) with every step applied to all
points together as numpy integer ops, looping only over bits and axes (``b * D <= 63``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["hilbert_index", "sfc_order", "KEY_BITS"]

KEY_BITS = 63  # a Hilbert key is a non-negative int64: D axes x b bits per axis <= 63


def hilbert_index(coords: np.ndarray, bits: int) -> np.ndarray:
    """Hilbert-curve index ``[N]`` (int64) of integer grid points ``coords [N, D]`` in
    ``[0, 2**bits)`` per axis (``D >= 2``, ``D * bits <= 63``).

    Consecutive indices are neighbouring grid cells: the curve visits every cell of the
    ``2**bits``-sided cube once, moving one step along one axis at a time.

    Example:
        >>> import numpy as np
        >>> cells = np.array([[0, 0], [0, 1], [1, 1], [1, 0]])
        >>> hilbert_index(cells, bits=1).tolist()
        [0, 1, 2, 3]
    """
    x = np.array(coords, dtype=np.int64)  # (N, D), a copy: transformed in place
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"hilbert_index expects grid points of shape [N, D] with D >= 2 (got "
                         f"{list(x.shape)}); order 1-D positions by their coordinate.")
    n, d = x.shape
    if not 1 <= bits or d * bits > KEY_BITS:
        raise ValueError(f"hilbert_index needs 1 <= bits and D * bits <= {KEY_BITS} (got "
                         f"bits={bits}, D={d}): the index must fit an int64.")
    if n and (x.min() < 0 or x.max() >= 1 << bits):
        raise ValueError(f"hilbert_index expects coordinates in [0, {(1 << bits) - 1}] for "
                         f"bits={bits} (got min {x.min()}, max {x.max()}).")
    top = 1 << (bits - 1)
    # inverse undo: walk the bits from the top, reflecting / exchanging the axes
    q = top
    while q > 1:
        low = q - 1
        for i in range(d):
            hit = (x[:, i] & q) != 0
            swap = np.where(hit, 0, (x[:, 0] ^ x[:, i]) & low)
            x[:, 0] ^= np.where(hit, low, swap)  # invert where set, else exchange ...
            if i:
                x[:, i] ^= swap  # ... the low bits of axis 0 and axis i
        q >>= 1
    # Gray encode
    for i in range(1, d):
        x[:, i] ^= x[:, i - 1]
    flip = np.zeros(n, dtype=np.int64)
    q = top
    while q > 1:
        flip ^= np.where((x[:, d - 1] & q) != 0, q - 1, 0)
        q >>= 1
    x ^= flip[:, None]
    # the "transpose": bit j of axis i is bit (j * D + D - 1 - i) of the index
    key = np.zeros(n, dtype=np.int64)
    for j in range(bits - 1, -1, -1):
        for i in range(d):
            key = (key << 1) | ((x[:, i] >> j) & 1)
    return key


def _project(pos: np.ndarray, dims: int) -> np.ndarray:
    """Positions ``[N, D]`` on their ``dims`` principal axes (PCA of the ``D x D``
    covariance; signs fixed so the result is deterministic)."""
    centred = pos - pos.mean(0)
    _, vecs = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    vecs = vecs[:, ::-1][:, :dims]
    vecs = vecs * np.where(vecs[np.abs(vecs).argmax(0), range(dims)] < 0, -1.0, 1.0)
    return centred @ vecs


def sfc_order(pos: Tensor) -> Tensor:
    """Column ids ``[N]`` (long) in Hilbert-curve order of their positions ``pos [N, D]``.

    Positions are quantised to a ``2**b`` grid per axis over their bounding CUBE (one scale
    for every axis, so distances keep their proportions; ``b = 63 // D``: 31 bits in 2-D, 21 in
    3-D) and sorted by Hilbert index, ties by column id. 1-D positions are sorted by their
    coordinate (the 1-D curve). Positions in ``D > 3`` dimensions are first projected on their
    3 principal axes (a Hilbert key in more dimensions has too few bits per axis to stay
    local). Deterministic: a pure function of the positions.

    Example:
        >>> import torch
        >>> sfc_order(torch.tensor([[0., 0.], [1., 1.], [0., 1.], [1., 0.]])).tolist()
        [0, 2, 1, 3]
    """
    x = torch.as_tensor(pos).detach().cpu().double().numpy()
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"sfc_order expects positions of shape [N, D] with N, D > 0 (got "
                         f"{list(x.shape)}).")
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x).all(1))[:5].tolist()
        raise ValueError(f"sfc_order expects finite positions; columns {bad} have NaN/inf. "
                         f"Fix or drop those columns first.")
    if x.shape[1] == 1:
        return torch.from_numpy(np.argsort(x[:, 0], kind="stable"))
    if x.shape[1] > 3:
        x = _project(x, 3)
    d = x.shape[1]
    bits = KEY_BITS // d
    lo = x.min(0)
    span = float((x.max(0) - lo).max())
    scale = ((1 << bits) - 1) / span if span > 0 else 0.0
    cells = np.clip(np.floor((x - lo) * scale), 0, (1 << bits) - 1).astype(np.int64)
    return torch.from_numpy(np.argsort(hilbert_index(cells, bits), kind="stable"))
