"""Degrees, strengths and reciprocity."""
from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import _a, _summary

__all__ = ["degree_stats", "reciprocity"]


def degree_stats(G) -> dict[str, Any]:
    """In / out degree and strength (sum of weights) distributions."""
    a = _a(G)
    out = {}
    for name, idx in (("in", a.dst), ("out", a.src)):
        out[f"{name}_degree"] = _summary(np.bincount(idx, minlength=a.n).astype(float))
        out[f"{name}_strength"] = _summary(np.bincount(idx, a.weight, minlength=a.n))
    return out


def reciprocity(G) -> dict[str, float]:
    """Fraction of edges whose reverse exists, and the weighted version
    ``sum_ij min(w_ij, w_ji) / sum_ij w_ij``."""
    a = _a(G)
    key = a.src * a.n + a.dst
    rkey = a.dst * a.n + a.src
    order = np.argsort(key)
    pos = np.searchsorted(key[order], rkey)
    pos = np.minimum(pos, key.size - 1)
    has = key[order][pos] == rkey
    w_rev = np.where(has, a.weight[order][pos], 0.0)
    return {"reciprocity": float(has.mean()) if key.size else 0.0,
            "weighted_reciprocity": float(np.minimum(a.weight, w_rev).sum() / a.weight.sum())}
