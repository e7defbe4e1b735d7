"""Area-to-area flow over disjoint areas and the feedforward-vs-feedback index."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..geometry import hops_from
from .arrays import ALIASES, EdgeArrays, _a

__all__ = ["plain_areas", "disjoint_areas", "area_flow"]


def plain_areas(a: EdgeArrays | dict[str, np.ndarray]) -> list[str]:
    """Areas that are not aliases of another (``input`` = ``area0`` is drawn once), of edge
    arrays or of an ``areas`` dict (name -> column indices)."""
    areas = a if isinstance(a, dict) else a.areas
    names = list(areas)
    sets = {k: frozenset(np.asarray(v).tolist()) for k, v in areas.items()}
    keep = [k for k in names if not (k in ALIASES and any(
        sets[o] == sets[k] for o in names if o != k and o not in ALIASES))]
    return keep


def disjoint_areas(a: EdgeArrays, names: list[str]) -> tuple[list[str], list[str]]:
    """A set of pairwise disjoint areas among ``names``, smallest first (a column counted in
    two areas would be its own source and target): ``(kept, dropped)``. On a sheet whose
    ``sheet`` area holds every column and ``input`` / ``output`` are parts of it, the parts
    are kept and ``sheet`` is dropped."""
    sets = {k: set(a.areas[k].tolist()) for k in names}
    kept: list[str] = []
    taken: set[int] = set()
    for k in sorted(names, key=lambda k: (len(sets[k]), names.index(k))):
        if not sets[k] & taken:
            kept.append(k)
            taken |= sets[k]
    kept = [k for k in names if k in kept]  # the given order
    return kept, [k for k in names if k not in kept]


def area_flow(G, order: list[str] | None = None) -> dict[str, Any]:
    """Area-to-area flow and the feedforward-vs-feedback index, over DISJOINT areas.

    ``flow[i][j]``: the share of area ``j``'s incoming weight that comes from area ``i``
    (columns sum to 1 when all of ``j``'s inputs lie in the listed areas). Overlapping
    areas are reduced to a disjoint set (:func:`disjoint_areas`; ``dropped`` says which were
    left out and ``coverage`` how many columns the kept ones hold). Areas are ordered by
    their mean hop distance from the ``input`` area (``area0 < area1 < ...`` for a stack)
    unless ``order`` is given. ``ff_index = (FF - FB) / (FF + FB)``, with ``FF`` the weight
    on edges from a lower to a higher area and ``FB`` the reverse: +1 is purely
    feedforward, -1 purely feedback; ``None`` (with ``note`` saying why) with fewer than
    two disjoint areas or no weight between them.
    """
    a = _a(G)
    unknown = [k for k in order or () if k not in a.areas]
    if unknown:
        raise ValueError(f"area_flow: unknown area(s) {', '.join(map(repr, unknown))} in "
                         f"order. The graph's areas: {', '.join(a.areas) or '(none)'}.")
    names, dropped = disjoint_areas(a, order or plain_areas(a))
    if order is None and "input" in a.areas and len(names) > 1:
        edges = torch.from_numpy(np.stack([a.src, a.dst]))
        hops = hops_from(edges, a.n, torch.from_numpy(a.areas["input"])).numpy()
        hops = np.where(hops >= 0, hops, np.nan)  # -1: unreachable from the input
        depth = {k: float(np.nanmean(hops[a.areas[k]])) for k in names}
        names = sorted(names, key=lambda k: (depth[k], k))
    label = np.full(a.n, -1)
    for i, k in enumerate(names):
        label[a.areas[k]] = i
    s, t = label[a.src], label[a.dst]
    ok = (s >= 0) & (t >= 0)
    m = len(names)
    flow = np.zeros((m, m))
    np.add.at(flow, (s[ok], t[ok]), a.weight[ok])
    into = np.bincount(t[t >= 0], a.weight[t >= 0], minlength=m)
    share = flow / np.maximum(into, 1e-12)[None, :]
    ff = float(a.weight[ok][s[ok] < t[ok]].sum())
    fb = float(a.weight[ok][s[ok] > t[ok]].sum())
    index = (ff - fb) / (ff + fb) if m > 1 and ff + fb > 0 else None
    covered = int((label >= 0).sum())
    note = None
    if m < 2:
        note = (f"n/a: fewer than two disjoint areas ({', '.join(names) or 'none'}"
                + (f"; {', '.join(dropped)} overlap them" if dropped else "") + ")")
    elif index is None:
        note = "n/a: no attention weight between different areas"
    elif dropped:
        note = (f"over disjoint areas {', '.join(names)} ({covered} of {a.n} columns); "
                f"{', '.join(dropped)} overlap them and are left out")
    return {"areas": names, "flow": share.tolist(), "flow_mass": flow.tolist(),
            "feedforward": ff, "feedback": fb, "ff_index": index, "dropped": dropped,
            "coverage": covered / a.n, "note": note}
