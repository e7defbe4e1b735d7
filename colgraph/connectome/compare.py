"""A learned connectome side by side with a reference one (a published connectome, another
run, a null model): the same metrics on both and the distance between their distributions.

Graphs of different sizes and units are compared on scale-free terms: degrees as they are,
strengths and edge weights divided by their mean, edge lengths by their median (so EDR
``lambda`` is reported in median edge lengths too). Distributions are compared with the
two-sample Kolmogorov-Smirnov statistic ``D`` (0 = the same distribution, 1 = disjoint) and
its p-value. Edge lengths come from the ``length`` edge attribute, else from the nodes'
``pos``; a graph with neither has no length metrics (``None``, with a note).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import (EdgeArrays, _a, edr_fit, modularity, reciprocity, rich_club,
                       small_world, weight_distance)
from .arrays import check_settings
from .nulls import check_families, significance
from .placement import _has_positions, placement_report

__all__ = ["compare", "distributions", "plot_comparison", "write_comparison", "SCALARS",
           "comparison_table", "PLACEMENT_ROWS"]

#: the scalar metrics reported side by side: name -> (description, how to read it)
SCALARS = {
    "columns": "nodes",
    "edges": "directed edges",
    "density": "edges / (N (N - 1))",
    "reciprocity": "share of edges whose reverse exists",
    "weighted_reciprocity": "sum min(w_ij, w_ji) / sum w_ij",
    "edr_lambda": "EDR length scale, in median edge lengths",
    "edr_ks": "KS distance of the lengths from the fitted EDR",
    "weight_distance_rho": "Spearman rho of weight vs length",
    "modularity_Q": "Louvain modularity",
    "modularity_z": "Q against degree-preserving nulls (z)",
    "modules": "Louvain modules",
    "clustering": "clustering (thresholded, binary)",
    "path_length": "characteristic path length",
    "small_world_sigma": "small-world sigma (> 1: small world)",
    "small_world_omega": "small-world omega (0: small world)",
    "rich_club_max": "max normalised rich-club coefficient",
}


def _with_lengths(a: EdgeArrays) -> EdgeArrays:
    """Lengths from node positions where the graph stores none."""
    if not a.src.size or np.isfinite(a.length).any() or a.pos.ndim != 2:
        return a
    if not np.ptp(a.pos, axis=0).any():  # no positions (arrays() fills zeros)
        return a
    length = np.linalg.norm(a.pos[a.src] - a.pos[a.dst], axis=1)
    return replace(a, length=length)


def _arrays(G) -> EdgeArrays:
    import networkx as nx

    if not isinstance(G, (EdgeArrays, nx.Graph)):
        raise TypeError(f"compare expects networkx graphs (e.g. colgraph.connectome."
                        f"to_networkx(run) or read_connectome(path)), got {type(G).__name__}.")
    a = _with_lengths(_a(G))
    return a


def distributions(G) -> dict[str, np.ndarray]:
    """The scale-free samples :func:`compare` tests: degrees, strengths / mean, weights /
    mean, lengths / median (weight-free: one sample per edge)."""
    a = _arrays(G)
    out = {"in_degree": np.bincount(a.dst, minlength=a.n).astype(float),
           "out_degree": np.bincount(a.src, minlength=a.n).astype(float)}
    for name, idx in (("in_strength", a.dst), ("out_strength", a.src)):
        s = np.bincount(idx, a.weight, minlength=a.n)
        out[name] = s / s.mean() if s.mean() > 0 else s
    out["edge_weight"] = a.weight / a.weight.mean() if a.weight.mean() > 0 else a.weight
    ok = np.isfinite(a.length) & (a.length > 0)
    if ok.any():
        out["edge_length"] = a.length[ok] / np.median(a.length[ok])
    return out


def _scalars(a: EdgeArrays, n_null: int, edge_fraction: float, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {"columns": a.n, "edges": int(a.src.size),
                           "density": a.src.size / (a.n * (a.n - 1))}
    out.update(reciprocity(a))
    ok = np.isfinite(a.length) & (a.length > 0)
    if ok.any():
        scaled = replace(a, length=a.length / np.median(a.length[ok]))
        edr = edr_fit(scaled)
        out["edr_lambda"], out["edr_ks"] = edr["lambda"], edr["ks"]
        out["weight_distance_rho"] = weight_distance(a)["weight_distance_rho"]
    else:
        out["edr_lambda"] = out["edr_ks"] = out["weight_distance_rho"] = None
    mod = modularity(a, n_null=n_null, seed=seed)
    out["modularity_Q"], out["modularity_z"], out["modules"] = mod["Q"], mod["Q_z"], mod["modules"]
    sw = small_world(a, edge_fraction=edge_fraction, seed=seed)
    out["clustering"], out["path_length"] = sw["clustering"], sw["path_length"]
    out["small_world_sigma"], out["small_world_omega"] = sw["sigma"], sw["omega"]
    out["rich_club_max"] = rich_club(a, edge_fraction, n_null, seed)["max_normalized"]
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
            for k, v in out.items()}


def compare(learned, reference, names: tuple[str, str] = ("learned", "reference"),
            n_null: int = 3, edge_fraction: float = 0.5, seed: int = 0,
            nulls: Any = "auto", placement: bool = False) -> dict[str, Any]:
    """The same metrics on ``learned`` and ``reference`` (networkx ``DiGraph`` s with
    ``weight`` and ``length`` edge attributes or node ``pos``), side by side. An undirected
    graph is compared with both directions of each edge (a warning and a note say so); the
    graphs are checked as :func:`~colgraph.connectome.analyze` checks them.

    Returns a JSON-ready dict: ``names``; ``metrics`` (scalar name -> {name: value}, see
    :data:`SCALARS`; ``None`` where a graph lacks what the metric needs); ``ks`` (per
    distribution of :func:`distributions`: ``D`` and ``p``); ``significance`` (per graph,
    :func:`~colgraph.connectome.significance` against the null families ``nulls``, with
    ``n_null`` samples each: which of each graph's structure its geometry already explains;
    absent with ``nulls=None`` or ``n_null=0``); with ``placement``, ``placement`` (per
    graph, :func:`~colgraph.connectome.placement_report` with ``seed``: the actual wire
    against the best placement found and random placements; ``None``, with a note, for a
    graph without node positions); ``notes``.

    Example:
        >>> import networkx as nx
        >>> a = nx.gnp_random_graph(60, 0.1, seed=0, directed=True)
        >>> b = nx.gnp_random_graph(60, 0.3, seed=1, directed=True)
        >>> out = compare(a, b, n_null=2)
        >>> out["ks"]["in_degree"]["D"] > 0.9   # very different degrees
        True
    """
    if isinstance(names, str) or len(names) != 2 or names[0] == names[1] or not all(
            isinstance(n, str) and n for n in names):
        raise ValueError(f"names must be two different, non-empty string labels, got "
                         f"{names!r}.")
    check_settings(n_null=n_null, edge_fraction=edge_fraction, seed=seed)  # before any work
    nulls = check_families(nulls)
    graphs = dict(zip(names, (_arrays(learned), _arrays(reference))))
    per = {n: _scalars(a, n_null, edge_fraction, seed) for n, a in graphs.items()}
    metrics = {k: {n: per[n][k] for n in names} for k in SCALARS}
    from scipy.stats import ks_2samp

    samples = {n: distributions(a) for n, a in graphs.items()}
    ks, notes = {}, []
    for key in samples[names[0]].keys() | samples[names[1]].keys():
        if key in samples[names[0]] and key in samples[names[1]]:
            r = ks_2samp(samples[names[0]][key], samples[names[1]][key])
            ks[key] = {"D": float(r.statistic), "p": float(r.pvalue)}
    for n in names:
        notes += [f"'{n}': {note}" for note in graphs[n].notes]
        if "edge_length" not in samples[n]:
            notes.append(f"'{n}' has no edge lengths (no 'length' attribute, no node 'pos'): "
                         f"no EDR, weight-distance or length comparison.")
    order = ["in_degree", "out_degree", "in_strength", "out_strength", "edge_weight",
             "edge_length"]
    out = {"names": list(names), "metrics": metrics, "ks": {k: ks[k] for k in order if k in ks}}
    if nulls and n_null > 0:
        out["significance"] = {n: significance(a, nulls, n_null, edge_fraction, seed=seed)
                               for n, a in graphs.items()}
        notes += [f"'{n}': significance: {note}" for n, sig in out["significance"].items()
                  for note in sig.get("notes", [])]
    if placement:  # the original graphs: an undirected one counts each edge once
        out["placement"] = {}
        for n, G in zip(names, (learned, reference)):
            if not _has_positions(G):
                out["placement"][n] = None
                notes.append(f"'{n}' has no node positions ('pos'): no placement report.")
                continue
            out["placement"][n] = placement_report(G, seed=seed)
            notes += [f"'{n}': placement: {note}" for note in out["placement"][n]["notes"]]
    out["notes"] = notes
    return out


#: the rows of :func:`comparison_table` for a ``placement`` section: name -> key of its
#: ``wire`` (see :func:`~colgraph.connectome.placement_report`)
PLACEMENT_ROWS = {"wire_actual": "actual", "wire_optimal_found": "optimal",
                  "wire_random_mean": "random_mean", "wire_z": "z", "wire_excess": "excess"}


def _rows(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The scalar rows of a :func:`compare` result: the metrics, then, with a
    ``placement`` section, its overall wire (``None`` for a graph without one)."""
    rows = dict(result["metrics"])
    if result.get("placement"):
        for row, key in PLACEMENT_ROWS.items():
            rows[row] = {n: None if r is None else r["wire"][key]
                         for n, r in result["placement"].items()}
    return rows


def comparison_table(result: dict[str, Any]) -> str:
    """:func:`compare`'s result as text: the metrics side by side (with the placement's
    wire, :data:`PLACEMENT_ROWS`, when compared), then the KS distances.

    Example:
        >>> result = {"names": ["a", "b"], "metrics": {"edges": {"a": 3, "b": 4}},
        ...           "ks": {"in_degree": {"D": 0.5, "p": 0.2}}}
        >>> print(comparison_table(result))
        metric           a           b
        edges            3           4
        KS D: in_degree 0.50
    """
    names = result["names"]
    rows = _rows(result)
    width = max(map(len, ["metric", *rows]))
    lines = [f"{'metric':<{width}}  " + "  ".join(f"{n:>10}" for n in names)]
    for key, values in rows.items():
        cells = ["n/a" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)
                 for v in (values[n] for n in names)]
        lines.append(f"{key:<{width}}  " + "  ".join(f"{c:>10}" for c in cells))
    lines.append("KS D: " + ", ".join(f"{k} {v['D']:.2f}" for k, v in result["ks"].items()))
    return "\n".join(lines)


def plot_comparison(learned, reference, result: dict[str, Any], path: str | Path) -> Path:
    """Complementary CDFs of each compared distribution (KS ``D`` in the titles) and a table
    of the scalar metrics side by side."""
    from .figures import _plt, _save

    plt = _plt()
    names = result["names"]
    samples = dict(zip(names, (distributions(learned), distributions(reference))))
    keys = list(result["ks"])
    cols = 3
    rows = -(-(len(keys) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows + 1.5))
    axes = np.atleast_1d(axes).ravel()
    labels = {"in_degree": "in-degree", "out_degree": "out-degree",
              "in_strength": "in-strength / mean", "out_strength": "out-strength / mean",
              "edge_weight": "edge weight / mean", "edge_length": "edge length / median"}
    for ax, key in zip(axes, keys):
        for name, colour in zip(names, ("tab:blue", "tab:orange")):
            x = np.sort(samples[name][key])
            ccdf = 1.0 - np.arange(x.size) / x.size
            ax.step(x, ccdf, where="post", color=colour, label=f"{name} (n={x.size})")
        ax.set_yscale("log")
        if key.endswith(("strength", "weight", "length")) and all(
                (samples[n][key] > 0).all() for n in names):
            ax.set_xscale("log")
        ax.set_xlabel(labels[key])
        ax.set_ylabel("P(X >= x)")
        ax.set_title(f"{labels[key]}: KS D = {result['ks'][key]['D']:.2f}", fontsize=10)
        ax.legend(fontsize=7)
    table_ax = axes[len(keys)]
    table_ax.axis("off")

    def fmt(v):
        return "n/a" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))

    rows_ = [[k, *(fmt(v[n]) for n in names)] for k, v in _rows(result).items()]
    table = table_ax.table(cellText=rows_, colLabels=["metric", *names], loc="center",
                           cellLoc="left", colWidths=[0.56, 0.22, 0.22],
                           bbox=[0.0, 0.0, 1.0, 1.0])
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table_ax.set_title("metrics side by side", fontsize=10, pad=14)
    for ax in axes[len(keys) + 1:]:
        ax.axis("off")
    fig.suptitle(f"{names[0]} vs {names[1]}")
    path = Path(path)
    _save(fig, path)
    return path


def write_comparison(learned, reference, out_dir: str | Path, **kwargs) -> dict[str, Any]:
    """:func:`compare`, written as ``compare.json`` (strict JSON: an undefined value is
    ``null``) and ``compare.png`` into ``out_dir``."""
    from .export import write_json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = compare(learned, reference, **kwargs)
    write_json(out_dir / "compare.json", result)
    plot_comparison(learned, reference, result, out_dir / "compare.png")
    return result
