"""Figures of a connectome analysis (matplotlib, written as PNG files)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .analysis import EdgeArrays, arrays, plain_areas, receptive_fields

__all__ = ["plot_all", "FIGURES", "plot_topography"]

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


def _xy(a: EdgeArrays) -> np.ndarray:
    pos = a.pos if a.pos.shape[1] >= 2 else np.c_[a.pos, np.zeros(a.n)]
    return pos


def plot_sheet(a: EdgeArrays, path: Path, per_column: int = 2) -> None:
    """The sheet with each column's strongest incoming edges, coloured by weight."""
    plt = _plt()
    pos = _xy(a)
    three_d = pos.shape[1] >= 3
    order = np.lexsort((-a.weight, a.dst))
    first = np.r_[0, np.flatnonzero(np.diff(a.dst[order])) + 1]
    rank = np.arange(order.size) - np.repeat(first, np.diff(np.r_[first, order.size]))
    top = order[rank < per_column]
    w = a.weight[top] / max(a.weight[top].max(), 1e-12)
    fig = plt.figure(figsize=(8, 6.5))
    ax = fig.add_subplot(projection="3d" if three_d else None)
    cmap = plt.get_cmap("viridis")
    seg = np.stack([pos[a.src[top]], pos[a.dst[top]]], 1)[np.argsort(w)]
    colours = cmap(np.sort(w))
    if three_d:
        from mpl_toolkits.mplot3d.art3d import Line3DCollection

        ax.add_collection3d(Line3DCollection(seg[..., :3], colors=colours, linewidths=0.8))
    else:
        from matplotlib.collections import LineCollection

        ax.add_collection(LineCollection(seg[..., :2], colors=colours, linewidths=0.8))
    for name in plain_areas(a) or ["(all)"]:
        idx = a.areas.get(name, np.arange(a.n))
        p = pos[idx]
        ax.scatter(*p[:, : 3 if three_d else 2].T, s=12, label=name, zorder=3)
    if not three_d:
        ax.set_aspect("equal", adjustable="datalim")
        ax.autoscale_view()
    ax.legend(loc="best", fontsize=8)
    ax.set_title(f"Strongest {per_column} inputs per column (colour = relative weight)")
    _save(fig, path)


def plot_lengths(metrics: dict[str, Any], path: Path) -> None:
    """Weighted edge-length density with the exponential-distance-rule fit (log scale)."""
    plt = _plt()
    edr = metrics["edr"]
    fig, ax = plt.subplots(figsize=(6, 4))
    if "hist_edges" in edr:
        edges, dens = np.array(edr["hist_edges"]), np.array(edr["hist_density"])
        ax.bar(edges[:-1], dens, width=np.diff(edges), align="edge", alpha=0.6,
               label="weighted edge lengths")
        x = np.linspace(edr["l_min"], edges[-1], 200)
        ax.plot(x, np.exp(-(x - edr["l_min"]) / edr["lambda"]) / edr["lambda"], "r-",
                label=f"EDR fit: lambda = {edr['lambda']:.2f} (KS {edr['ks']:.2f}, "
                      f"R2 {edr['r2']:.2f})")
        ax.set_yscale("log")
    ax.set_xlabel("edge length")
    ax.set_ylabel("density (weighted)")
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
    """In / out degree and strength distributions."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(8, 6))
    for col, (name, idx) in enumerate((("in", a.dst), ("out", a.src))):
        deg = np.bincount(idx, minlength=a.n)
        strength = np.bincount(idx, a.weight, minlength=a.n)
        axes[0, col].hist(deg, bins=30)
        axes[0, col].set_title(f"{name}-degree")
        axes[1, col].hist(strength, bins=30, color="tab:orange")
        axes[1, col].set_title(f"{name}-strength (sum of weights)")
    for ax in axes.flat:
        ax.set_ylabel("columns")
    _save(fig, path)


def plot_receptive_fields(a: EdgeArrays, path: Path) -> None:
    """Receptive-field size (weighted mean input length) mapped over each area."""
    plt = _plt()
    rf = receptive_fields(a)
    pos = _xy(a)
    names = plain_areas(a) or ["(all)"]
    names = names[:6]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.8), squeeze=False)
    finite = rf[np.isfinite(rf)]
    vmin, vmax = (finite.min(), finite.max()) if finite.size else (0, 1)
    for ax, name in zip(axes[0], names):
        idx = a.areas.get(name, np.arange(a.n))
        sc = ax.scatter(pos[idx, 0], pos[idx, 1], c=rf[idx], cmap="viridis", vmin=vmin,
                        vmax=vmax, s=40)
        ax.set_title(name)
        ax.set_aspect("equal", adjustable="datalim")
    fig.colorbar(sc, ax=axes[0].tolist(), label="receptive-field size (mean input length)")
    _save(fig, path, tight=False)


def plot_all(G, metrics: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write every figure of :data:`FIGURES` into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    a = arrays(G)
    paths = [out_dir / f for f in FIGURES]
    plot_sheet(a, paths[0])
    plot_lengths(metrics, paths[1])
    plot_flow(metrics, paths[2])
    plot_degrees(a, paths[3])
    plot_receptive_fields(a, paths[4])
    return paths


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
