"""Figures of a connectome analysis (matplotlib, written as PNG files)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..geometry import plane_axes, rank_within_target
from .analysis import EdgeArrays, arrays, plain_areas, receptive_fields

__all__ = ["plot_all", "plot_sheet", "FIGURES", "plot_topography", "plot_significance",
           "layout", "plot_selectivity"]

FIGURES = ("sheet.png", "lengths.png", "flow.png", "degrees.png", "receptive_fields.png")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, tight: bool = True) -> None:
    import matplotlib.pyplot as plt

    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _flat_areas(pos: np.ndarray, areas: dict[str, np.ndarray], names: list[str]) -> bool:
    """3-D sheets whose areas are each flat (a stack's layers): drawn side by side."""
    if pos.shape[1] < 3 or len(names) < 2:
        return False
    for name in names:
        p = pos[areas[name]]
        spread = np.ptp(p, axis=0)
        if p.shape[0] > 2 and spread.min() > 1e-6 * max(spread.max(), 1e-12):
            return False
    return True


def layout(a: EdgeArrays) -> tuple[np.ndarray, str]:
    """Where to draw each column: ``(xy [N, 2] or xyz [N, 3], kind)``.

    ``"flat"``: 1-D / 2-D sheets as they are; ``"areas"``: a 3-D sheet of flat areas (a
    stack) laid out flat, area after area from left to right, each in its own two spread
    axes; ``"3d"``: other 3-D sheets (spheres, surfaces), drawn in 3-D.
    """
    return _layout(a.pos, a.areas)


def _layout(pos: np.ndarray, areas: dict[str, np.ndarray] | None = None,
            at: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """:func:`layout` from positions ``[N, D]`` and ``areas`` (name -> column indices;
    aliases such as ``input`` are skipped, :func:`plain_areas`): where to draw the columns,
    or, with ``at`` (``[M, D]`` points of the same sheet, e.g. the columns' positions after a
    placement), where to draw those points, each in the frame of the area of the column
    nearest to it."""
    def plane(x):  # a 1-D sheet drawn along y = 0
        x = np.asarray(x, dtype=float)
        return x if x.shape[1] >= 2 else np.c_[x, np.zeros(len(x))]

    pos = plane(pos)
    points = pos if at is None else plane(at)
    areas = areas or {}
    names = [n for n in plain_areas(areas) if len(areas[n])]
    if pos.shape[1] == 2:
        return points, "flat"
    if not _flat_areas(pos, areas, names):
        return points[:, :3], "3d"
    frame = np.full(pos.shape[0], -1)  # the area each column is drawn in (the last listed)
    shifts = []
    x0 = 0.0
    for k, name in enumerate(names):
        idx = areas[name]
        p = pos[idx]
        axes = plane_axes(p)
        lo = p[:, axes].min(0)
        frame[idx] = k
        shifts.append((axes, lo - [x0, 0.0]))
        width = float((p[:, axes] - lo)[:, 0].max())
        x0 += width + max(1.0, 0.15 * width) + 1.0
    if at is not None:
        from scipy.spatial import cKDTree

        frame = frame[cKDTree(pos).query(points)[1]]
    xy = points[:, :2].copy()  # columns in no area: as they are
    for k, (axes, shift) in enumerate(shifts):
        inside = frame == k
        xy[inside] = points[inside][:, axes] - shift
    return xy, "areas"


def _axes(fig, kind: str, *grid):
    return fig.add_subplot(*grid, projection="3d" if kind == "3d" else None)


def _area_labels(ax, areas: dict[str, np.ndarray], xy: np.ndarray, names: list[str]) -> None:
    for name in names:
        p = xy[areas[name]]
        ax.text(p[:, 0].mean(), p[:, 1].max() + 0.6, name, ha="center", va="bottom",
                fontsize=9)


def _label_sheet(ax, areas: dict[str, np.ndarray], xy: np.ndarray, names: list[str],
                 kind: str) -> None:
    """Axis labels of a sheet drawn by :func:`layout` (the ``names`` of ``areas`` on a
    stack's flat areas), equal aspect in the plane."""
    if kind == "areas":
        _area_labels(ax, areas, xy, names)
        ax.set_xlabel("position within each area (areas side by side)")
    else:
        ax.set_xlabel("x")
    ax.set_ylabel("y")
    if kind == "3d":
        ax.set_zlabel("z")
    else:
        ax.set_aspect("equal", adjustable="datalim")
        ax.autoscale_view()


def _top_inputs(a: EdgeArrays, per_column: int) -> np.ndarray:
    """Indices of each column's ``per_column`` strongest incoming edges."""
    rank = rank_within_target(torch.from_numpy(a.dst), torch.from_numpy(a.weight), a.n)
    return np.flatnonzero(rank.numpy() < per_column)


def plot_sheet(G, path: str | Path, per_column: int = 2) -> Path:
    """The sheet with each column's strongest incoming edges as arrows (source -> target)
    coloured by weight, with a colour bar. A stack's areas are laid out flat, side by side.
    ``G``: a connectome graph (or its :func:`~colgraph.connectome.analysis.arrays`)."""
    plt = _plt()
    a = G if isinstance(G, EdgeArrays) else arrays(G)
    from matplotlib.colors import Normalize

    xy, kind = layout(a)
    top = _top_inputs(a, per_column)
    top = top[np.argsort(a.weight[top])]  # strongest drawn last
    w = a.weight[top]
    norm = Normalize(0.0, max(float(w.max()), 1e-12) if w.size else 1.0)
    cmap = plt.get_cmap("viridis")
    span = np.ptp(xy[:, :2], axis=0) + 1e-9
    size = (8, 6.5) if kind == "3d" else (10, float(np.clip(10 * span[1] / span[0], 3, 9)) + 1)
    fig = plt.figure(figsize=size)
    ax = _axes(fig, kind, 1, 1, 1)
    names = [n for n in plain_areas(a) if n in a.areas]
    if kind == "3d":
        from mpl_toolkits.mplot3d.art3d import Line3DCollection

        seg = np.stack([xy[a.src[top]], xy[a.dst[top]]], 1)
        ax.add_collection3d(Line3DCollection(seg, colors=cmap(norm(w)), linewidths=0.8))
        ax.set_zlabel("z")
    else:
        d = xy[a.dst[top]] - xy[a.src[top]]
        ax.quiver(xy[a.src[top], 0], xy[a.src[top], 1], d[:, 0], d[:, 1], w, cmap=cmap,
                  norm=norm, angles="xy", scale_units="xy", scale=1.0, width=0.0022,
                  headwidth=4, headlength=5, zorder=2)
    for name in names or ["(all)"]:
        p = xy[a.areas.get(name, np.arange(a.n))]
        ax.scatter(*p.T, s=10, label=name, zorder=3)
    _label_sheet(ax, a.areas, xy, names, kind)
    ax.legend(loc="best", fontsize=8)
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, shrink=0.8, label=f"edge weight ({a.weight_name})")
    arrows = "arrows: source -> target" if kind != "3d" else "lines (3-D view)"
    ax.set_title(f"Strongest {per_column} inputs per column ({arrows})")
    _save(fig, Path(path))
    return Path(path)


def plot_lengths(metrics: dict[str, Any], path: Path) -> None:
    """Weighted edge-length density with the exponential-distance-rule fit (log scale; the
    fit is drawn over the data's range only)."""
    plt = _plt()
    edr = metrics["edr"]
    fig, ax = plt.subplots(figsize=(6, 4))
    if "hist_edges" in edr:
        edges, dens = np.array(edr["hist_edges"]), np.array(edr["hist_density"])
        ax.bar(edges[:-1], dens, width=np.diff(edges), align="edge", alpha=0.6,
               label="weighted edge lengths")
        x = np.linspace(edr["l_min"], edges[-1], 200)
        fit = np.exp(-(x - edr["l_min"]) / edr["lambda"]) / edr["lambda"]
        shown = dens[dens > 0]
        if shown.size:  # clip the fit to the data's density range: no empty decades
            keep = fit >= shown.min() / 2
            x, fit = x[keep], fit[keep]
            ax.set_ylim(shown.min() / 2, max(shown.max(), fit.max() if fit.size else 0) * 2)
        ax.plot(x, fit, "r-", label=f"EDR fit: lambda = {edr['lambda']:.2f} (KS "
                                    f"{edr['ks']:.2f}, R2 {edr['r2']:.2f})")
        ax.set_yscale("log")
        ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel("edge length (geometry units)")
    ax.set_ylabel("density (weighted by edge weight)")
    ax.set_title("Edge lengths and the exponential distance rule")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_flow(metrics: dict[str, Any], path: Path) -> None:
    """Area-to-area flow heatmap (share of each target area's input from each source)."""
    plt = _plt()
    flow = metrics["flow"]
    m = np.array(flow["flow"])
    fig, ax = plt.subplots(figsize=(1.2 * len(m) + 3, 1.0 * len(m) + 2.5))
    im = ax.imshow(m, cmap="magma", vmin=0, vmax=max(m.max(), 1e-12))
    ax.set_xticks(range(len(m)), flow["areas"], rotation=45)
    ax.set_yticks(range(len(m)), flow["areas"])
    ax.set_xlabel("to (target area)")
    ax.set_ylabel("from (source area)")
    for i in range(len(m)):
        for j in range(len(m)):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center",
                    color="w" if m[i, j] < 0.6 * m.max() else "k", fontsize=8)
    idx, note = flow["ff_index"], flow.get("note")
    title = "Area-to-area flow" + (f"\nfeedforward index {idx:+.2f}" if idx is not None
                                   else "\nfeedforward index n/a")
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize=9)
    fig.colorbar(im, ax=ax, label="share of target's input")
    _save(fig, path)


def plot_degrees(a: EdgeArrays, path: Path) -> None:
    """In / out degree and strength distributions, stacked by area. A quantity the same for
    every column (k-NN wiring fixes the in-degree; attention sums to one over each column's
    inputs) gets no panel: the title says its value."""
    plt = _plt()
    names = [n for n in plain_areas(a) if n in a.areas] or ["(all)"]
    groups = [a.areas.get(n, np.arange(a.n)) for n in names]
    series = {"in-degree": np.bincount(a.dst, minlength=a.n).astype(float),
              "out-degree": np.bincount(a.src, minlength=a.n).astype(float),
              f"in-strength (sum of {a.weight_name})": np.bincount(a.dst, a.weight, minlength=a.n),
              f"out-strength (sum of {a.weight_name})": np.bincount(a.src, a.weight,
                                                                    minlength=a.n)}
    # float sums of softmax weights differ from 1 by ~1e-7: constant within 1e-5
    constant = {k: v[0] for k, v in series.items() if np.ptp(v) <= 1e-5 * max(abs(v[0]), 1)}
    shown = [k for k in series if k not in constant]
    cols = min(2, max(len(shown), 1))
    rows = -(-max(len(shown), 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows + 0.6),
                             squeeze=False)
    for ax, key in zip(axes.flat, shown):
        ax.hist([series[key][g] for g in groups], bins=30, stacked=True, label=names)
        ax.set_xlabel(key)
        ax.set_ylabel("columns")
        ax.set_title(key)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    same = "; ".join(f"{k} = {v:.3g} for every column" for k, v in constant.items())
    fig.suptitle("Degree and strength by area" + (f"\n({same})" if same else ""), fontsize=10)
    _save(fig, path)


def plot_receptive_fields(a: EdgeArrays, path: Path) -> None:
    """Receptive-field size (weighted mean input length) over each area, each area on its
    own colour scale; curved sheets (spheres, surfaces) in 3-D, not flattened."""
    plt = _plt()
    rf = receptive_fields(a)
    xy, kind = layout(a)
    names = ([n for n in plain_areas(a) if n in a.areas] or ["(all)"])[:6]
    fig = plt.figure(figsize=(4.6 * len(names), 4.2))
    for i, name in enumerate(names):
        ax = _axes(fig, kind, 1, len(names), i + 1)
        idx = a.areas.get(name, np.arange(a.n))
        vals = rf[idx]
        finite = vals[np.isfinite(vals)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        p = xy[idx]
        if kind == "areas":
            p = p - p.min(0)
        sc = ax.scatter(*p.T, c=vals, cmap="viridis", vmin=lo, vmax=max(hi, lo + 1e-12),
                        s=40 if kind != "3d" else 8)
        ax.set_title(f"{name} ({idx.size} columns)", fontsize=10)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        if kind == "3d":
            ax.set_zlabel("z")
        else:
            ax.set_aspect("equal", adjustable="datalim")
        fig.colorbar(sc, ax=ax, shrink=0.8, pad=0.15 if kind == "3d" else 0.05,
                     label="receptive-field size (mean input length)")
    fig.suptitle("Receptive-field size per column (each area on its own scale)", fontsize=10)
    _save(fig, path)


def _class_colours(count: int):
    """``count`` distinct colours: tab10 / tab20, else evenly spaced hues."""
    plt = _plt()
    if count <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(count)]
    if count <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(count)]
    return [plt.get_cmap("hsv")(i / count) for i in range(count)]


def plot_selectivity(G, path: str | Path) -> Path:
    """Each column coloured by its preferred class, opacity and size by its selectivity
    (max d'), one legend entry per class; laid out as :func:`plot_sheet` lays out the sheet
    (stacks flat, area beside area; spheres and surfaces in 3-D). ``G``: a connectome graph
    with the node attributes ``preferred_class`` and ``selectivity``
    (:func:`~colgraph.connectome.selectivity.add_selectivity`)."""
    from matplotlib.lines import Line2D

    missing = [v for v, d in G.nodes(data=True)
               if "preferred_class" not in d or "selectivity" not in d]
    if missing:
        raise ValueError(f"plot_selectivity needs the node attributes 'preferred_class' and "
                         f"'selectivity' on every column ({len(missing)} lack them, e.g. "
                         f"{missing[0]!r}): add them with add_selectivity(G, "
                         f"class_selectivity(model, loader)).")
    plt = _plt()
    a = arrays(G)
    best = np.array([int(d["preferred_class"]) for _, d in G.nodes(data=True)])
    dprime = np.array([float(d["selectivity"]) for _, d in G.nodes(data=True)])
    xy, kind = layout(a)
    classes = sorted(set(best[best >= 0].tolist()))
    colours = dict(zip(classes, _class_colours(len(classes))))
    finite = np.isfinite(dprime) & (best >= 0)
    top = float(np.abs(dprime[finite]).max()) if finite.any() else 1.0
    strength = np.where(finite, np.clip(np.nan_to_num(dprime) / max(top, 1e-12), 0.0, 1.0), 0.0)
    rgba = np.array([colours.get(c, (0.6, 0.6, 0.6, 1.0)) for c in best], dtype=float)
    rgba[:, 3] = 0.15 + 0.85 * strength
    base = 8.0 if kind == "3d" else 12.0
    size = base * (0.5 + 3.5 * strength)
    span = np.ptp(xy[:, :2], axis=0) + 1e-9
    figsize = (8, 6.5) if kind == "3d" else (10, float(np.clip(10 * span[1] / span[0], 3, 9)) + 1)
    fig = plt.figure(figsize=figsize)
    ax = _axes(fig, kind, 1, 1, 1)
    ax.scatter(*xy.T, c=rgba, s=size, edgecolors="none")
    names = [n for n in plain_areas(a) if n in a.areas]
    _label_sheet(ax, a.areas, xy, names, kind)
    def columns(count: int) -> str:
        return f"{count} column" + ("s" if count != 1 else "")

    handles = [Line2D([], [], marker="o", ls="", color=colours[c],
                      label=f"class {c} ({columns(int((best == c).sum()))})") for c in classes]
    if (best < 0).any():
        handles.append(Line2D([], [], marker="o", ls="", color=(0.6, 0.6, 0.6),
                              label=f"no d' ({columns(int((best < 0).sum()))})"))
    ax.legend(handles=handles, title="preferred class", loc="center left",
              bbox_to_anchor=(1.15 if kind == "3d" else 1.02, 0.5), fontsize=8)
    ax.set_title(f"Preferred class per column (opacity and size: selectivity d', max "
                 f"{top:.2f})")
    _save(fig, Path(path))
    return Path(path)


def plot_all(G, metrics: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write every figure of :data:`FIGURES` into ``out_dir`` (and ``selectivity.png`` when
    the graph's columns carry ``preferred_class``); return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    a = arrays(G)
    paths = [out_dir / f for f in FIGURES]
    plot_sheet(a, paths[0])
    plot_lengths(metrics, paths[1])
    plot_flow(metrics, paths[2])
    plot_degrees(a, paths[3])
    plot_receptive_fields(a, paths[4])
    if metrics.get("significance"):
        paths.append(plot_significance(metrics["significance"], out_dir / "significance.png"))
    if hasattr(G, "nodes") and G.number_of_nodes() and all(
            "preferred_class" in d for _, d in G.nodes(data=True)):
        paths.append(plot_selectivity(G, out_dir / "selectivity.png"))
    return paths


def plot_significance(significance: dict[str, Any], path: str | Path) -> Path:
    """Each scalar's z-score against each null family (:func:`~colgraph.connectome.
    significance`), on a symmetric log axis, with the |z| = 3 band: a bar inside the band is
    what that null family already explains."""
    plt = _plt()
    path = Path(path)
    families = list(significance["families"])
    names = [k for k, v in significance["metrics"].items() if v["value"] is not None]
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(names), 3) + 1.6))
    height = 0.8 / max(len(families), 1)
    y = np.arange(len(names))
    for i, family in enumerate(families):
        z = [significance["metrics"][k][family]["z"] for k in names]
        z = np.array([np.nan if v is None else v for v in z], dtype=float)
        ax.barh(y + (i - (len(families) - 1) / 2) * height, np.nan_to_num(z), height,
                label=family)
        for yy, zz in zip(y + (i - (len(families) - 1) / 2) * height, z):
            if not np.isfinite(zz):  # undefined (no variance, or a metric the null lacks)
                ax.text(0, yy, " n/a", va="center", fontsize=7, color="0.4")
    ax.axvspan(-3, 3, color="0.85", zorder=0, label="|z| < 3")
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xscale("symlog", linthresh=3)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("z = (value - null mean) / null s.d.")
    ax.set_title(f"Which structure survives which null ({significance['n_null']} samples per "
                 f"family)")
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)
    return path


def plot_topography(distance: np.ndarray, correlation: np.ndarray, path: str | Path,
                    smoothness: float | None = None, bins: int = 12) -> Path:
    """Response correlation against distance on the sheet (binned mean and spread): a
    topographic sheet's curve falls with distance."""
    plt = _plt()
    path = Path(path)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ok = np.isfinite(distance) & np.isfinite(correlation)
    d, c = distance[ok], correlation[ok]
    edges = np.unique(np.quantile(d, np.linspace(0, 1, bins + 1))) if d.size else np.array([])
    if edges.size >= 2:
        idx = np.clip(np.digitize(d, edges[1:-1]), 0, edges.size - 2)
        centre = np.array([d[idx == i].mean() for i in range(edges.size - 1) if (idx == i).any()])
        mean = np.array([c[idx == i].mean() for i in range(edges.size - 1) if (idx == i).any()])
        sd = np.array([c[idx == i].std() for i in range(edges.size - 1) if (idx == i).any()])
        ax.fill_between(centre, mean - sd, mean + sd, alpha=0.25, label="± 1 s.d.")
        ax.plot(centre, mean, "o-", label="mean over column pairs")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("distance between columns (geometry units)")
    ax.set_ylabel("response correlation across samples")
    title = "Topography: response correlation vs distance"
    if smoothness is not None:
        title += f"\nsmoothness (neighbours - random pairs) = {smoothness:.3f}"
    ax.set_title(title)
    ax.legend(loc="upper right")
    _save(fig, path)
    return path
