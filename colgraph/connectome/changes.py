"""What training changed: the learned connectome against the sheet as it was built (its
construction-time wiring with the initial bias prior) and along the connectome snapshots
written during training (``train.connectome_every=N``).

* :func:`prior_connectome`: the sheet as built, as a connectome: the construction-time
  geometry's edges weighted by ``softmax(bias prior)`` over each column's inputs (the
  attention a column pays before learning, when its queries and keys are uninformative).
* :func:`changes`: per-edge weight change (edges kept, grown, pruned), every scalar of
  :data:`~colgraph.connectome.nulls.SCALARS` before and after, and whether the learned
  value is beyond the ``prior`` null family (the learned weights permuted within each
  target column: the same edges, no learned arrangement); along the snapshots, each
  scalar with that null's band.
* :func:`run_changes`: all of it for a run directory or checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .arrays import _a, check_settings
from .nulls import SCALARS, scalars, significance

__all__ = ["prior_connectome", "changes", "run_changes", "plot_changes", "changes_summary",
           "TRAJECTORY"]

#: the scalars drawn over training by :func:`plot_changes`
TRAJECTORY = ("modularity_Q", "weighted_clustering", "small_world_sigma", "edr_lambda",
              "weight_distance_rho", "ff_index")


def prior_connectome(model_or_path: Any):
    """The sheet as it was built, as a ``networkx.DiGraph``: the construction-time
    geometry's edges (before any pruning or growth; a checkpoint stores it) weighted by
    ``softmax`` of the initial bias prior ``-length^2 / (2 sigma^2)`` (clamped, mean over
    blocks) over each column's inputs. A model in memory gives its current edges (it does
    not keep the construction-time ones).

    Example:
        >>> from colgraph import Columnformer
        >>> from colgraph.geometry import grid, knn
        >>> G = prior_connectome(Columnformer(grid(5, wiring=knn(4))))
        >>> G.graph["weight"], G.number_of_edges()
        ('prior softmax(bias)', 100)
    """
    import torch

    from .export import ConnectomeData, _unwrap, to_networkx

    if isinstance(model_or_path, (str, Path)):
        from ..checkpoint import load_checkpoint
        from ..geometry import Geometry
        from ..parallel import Partition

        _, cf, _, _ = _unwrap(model_or_path, with_data=False)
        state = load_checkpoint(model_or_path)
        geometry = Geometry.from_state_dict(state["geometry"])  # as built
        if state.get("partition") is not None:  # the column order the model was built in
            geometry = Partition.from_state_dict(state["partition"]).renumber(geometry)
    else:
        _, cf, geometry, _ = _unwrap(model_or_path, with_data=False)
        if geometry is None:
            raise ValueError("prior_connectome of a column-sharded sheet in memory: pass its "
                             "checkpoint path instead (it holds the whole construction-time "
                             "geometry).")
    with torch.no_grad():
        bias = torch.stack([b.attn.bias_prior(cf.edges, geometry.edge_index,
                                              geometry.edge_length) for b in cf.blocks]).mean(0)
    return to_networkx(ConnectomeData(geometry, bias.float().cpu(), None))


def _edge_changes(learned, prior) -> tuple[dict[str, Any], dict]:
    """Per-edge weight changes between two graphs on the same columns, matched by
    (source, target): ``(summary, {(u, v): learned - prior})`` over the edges in both."""
    from scipy.stats import spearmanr

    old = {(u, v): d.get("weight", 1.0) for u, v, d in prior.edges(data=True)}
    new = {(u, v): d.get("weight", 1.0) for u, v, d in learned.edges(data=True)}
    kept = [e for e in new if e in old]
    delta = {e: float(new[e]) - float(old[e]) for e in kept}
    w_old = np.array([old[e] for e in kept], dtype=float)
    w_new = np.array([new[e] for e in kept], dtype=float)
    rho = None
    if w_old.size > 2 and np.ptp(w_old) > 0 and np.ptp(w_new) > 0:
        rho = float(spearmanr(w_old, w_new)[0])
    d = np.array(list(delta.values()))
    summary = {"kept": len(kept), "grown": len(new) - len(kept),
               "pruned": len(old) - len(kept),
               "mean_abs_change": float(np.abs(d).mean()) if d.size else None,
               "max_increase": float(d.max()) if d.size else None,
               "max_decrease": float(d.min()) if d.size else None,
               "weight_spearman": rho}
    return summary, delta


def _families(G) -> tuple[str, ...]:
    """The prior families that apply: within target columns, and within length bins where
    the graph has lengths (the weights' dependence on length kept)."""
    return ("prior", "prior_length") if np.isfinite(_a(G).length).any() else ("prior",)


def _point(G, families: tuple[str, ...], n_null: int, edge_fraction: float, seed: int
           ) -> dict[str, Any]:
    """Every scalar of one graph with each family's null mean / std / z / p."""
    if n_null == 0:
        values = scalars(_a(G), edge_fraction, seed=seed)
        return {k: {"value": v if np.isfinite(v) else None} for k, v in values.items()}
    sig = significance(G, families=families, n_null=n_null, edge_fraction=edge_fraction,
                       seed=seed)
    return {k: {"value": e["value"], **{f: e[f] for f in families}}
            for k, e in sig["metrics"].items()}


def changes(learned, prior, snapshots: list[tuple[str, Any]] | None = None, n_null: int = 3,
            edge_fraction: float = 0.5, seed: int = 0) -> dict[str, Any]:
    """What training changed, from ``prior`` (the sheet as built:
    :func:`prior_connectome`) to ``learned``, through ``snapshots`` (``(label, graph)``
    pairs in training order).

    Returns a JSON-ready dict:

    * ``edges``: edges ``kept`` / ``grown`` / ``pruned``, the mean absolute weight change
      of the kept edges, the largest increase / decrease and the Spearman correlation of
      their weights before and after;
    * ``metrics``: per scalar, its ``as_built`` and ``learned`` values, the ``change`` and
      the learned value against the prior null families (``nulls``: ``{family: {"z", "p",
      ...}}``):
      ``prior``, the learned weights permuted within each target column (is there any
      arrangement?), and ``prior_length``, permuted within length bins (is there more
      than a dependence on length?), where the graph has lengths; ``None`` where undefined;
    * ``trajectory``: ``labels`` (``prior``, the snapshots, ``learned``) and per scalar its
      ``value`` and each family's ``null`` ``mean`` / ``std`` at each point (the bands of
      :func:`plot_changes`).

    ``n_null``: samples per family and graph (0: values only, no z / bands).
    """
    check_settings(n_null=n_null, edge_fraction=edge_fraction, seed=seed)
    snapshots = list(snapshots or [])
    for label, graph in snapshots:
        if not isinstance(label, str):
            raise TypeError(f"Expected snapshots as (label, graph) pairs with a str label, got "
                            f"{type(label).__name__} {label!r}.")
    learned_arrays, prior_arrays = _a(learned), _a(prior)  # both checked before any work
    if set(learned_arrays.nodes) != set(prior_arrays.nodes):
        raise ValueError(f"The learned and prior connectomes must have the same columns "
                         f"({len(learned_arrays.nodes)} vs {len(prior_arrays.nodes)} nodes, "
                         f"or other labels): export both from the same run.")
    edges, _ = _edge_changes(learned, prior)
    families = _families(learned) if n_null else ()
    graphs = [("prior", prior), *snapshots, ("learned", learned)]
    points = [(label, _point(g, families, n_null, edge_fraction, seed)) for label, g in graphs]
    before, after = points[0][1], points[-1][1]
    metrics = {}
    for name in SCALARS:
        b, a = before[name]["value"], after[name]["value"]
        metrics[name] = {"as_built": b, "learned": a,
                         "change": None if a is None or b is None else a - b,
                         "nulls": {f: after[name][f] for f in families}}
    trajectory: dict[str, Any] = {"labels": [label for label, _ in points]}
    for name in SCALARS:
        trajectory[name] = {"value": [p[name]["value"] for _, p in points],
                            "null": {f: {k: [p[name][f][k] for _, p in points]
                                         for k in ("mean", "std")} for f in families}}
    return {"n_null": n_null, "families": list(families), "edges": edges, "metrics": metrics,
            "trajectory": trajectory}


def run_changes(run: str | Path, loader: Any = "test", max_batches: int | None = None,
                n_null: int = 3, edge_fraction: float = 0.5, seed: int = 0,
                learned: Any = None) -> dict[str, Any]:
    """:func:`changes` for a run directory or checkpoint: its learned connectome (attention
    on ``loader``, default its test set; or ``learned``, a graph already exported), the
    sheet as built, and the snapshots in ``RUN_DIR/connectome/epochNNNN.graphml``
    (``train.connectome_every=N``)."""
    from .export import read_connectome, to_networkx

    check_settings(n_null=n_null, edge_fraction=edge_fraction, seed=seed)
    run = Path(run)
    run_dir = run if run.is_dir() else run.parent
    prior = prior_connectome(run)
    if learned is None:
        learned = to_networkx(run, loader=loader, max_batches=max_batches)
    snaps = [(p.stem, read_connectome(p))
             for p in sorted((run_dir / "connectome").glob("epoch*.graphml"))]
    return changes(learned, prior, snaps, n_null, edge_fraction, seed)


def changes_summary(result: dict[str, Any],
                    names: tuple[str, ...] = ("modularity_Q", "weighted_clustering",
                                              "edr_lambda", "weight_distance_rho")) -> str:
    """A few lines of :func:`changes`' result for the console."""
    e = result["edges"]
    rho = "n/a" if e["weight_spearman"] is None else f"{e['weight_spearman']:.2f}"
    lines = [f"changes from the sheet as built: {e['kept']} edges kept, {e['grown']} grown, "
             f"{e['pruned']} pruned; Spearman rho of kept weights before / after {rho}; "
             f"{len(result['trajectory']['labels']) - 2} snapshot(s)"]
    for name in names:
        m = result["metrics"][name]
        if m["as_built"] is None or m["learned"] is None:
            continue
        zs = ", ".join(f"{f} z {'n/a' if z['z'] is None else format(z['z'], '+.1f')}"
                       for f, z in m["nulls"].items())
        lines.append(f"  {name}: {m['as_built']:.3f} -> {m['learned']:.3f}"
                     + (f" ({zs})" if zs else ""))
    return "\n".join(lines)


def plot_changes(result: dict[str, Any], path: str | Path,
                 names: tuple[str, ...] = TRAJECTORY) -> Path:
    """Each scalar over training (the sheet as built, the snapshots, the learned sheet) with
    each prior family's band (mean +- 2 s.d. of the weights permuted within target columns,
    or within length bins): a value outside a band is an arrangement of the weights that
    permuting them that way does not give."""
    from .figures import _plt, _save

    plt = _plt()
    path = Path(path)
    traj = result["trajectory"]
    labels = traj["labels"]
    names = [n for n in names if any(v is not None for v in traj[n]["value"])]
    cols = 3
    rows = max(1, -(-len(names) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    x = np.arange(len(labels))
    as_float = lambda v: np.array([np.nan if e is None else e for e in v], float)  # noqa: E731
    for ax, name in zip(axes.ravel(), names):
        for family, colour in zip(traj[name]["null"], ("0.75", "tab:orange")):
            mean, std = (as_float(traj[name]["null"][family][k]) for k in ("mean", "std"))
            if np.isfinite(std).any():
                ax.fill_between(x, mean - 2 * std, mean + 2 * std, color=colour, alpha=0.4,
                                label=f"{family} null ± 2 s.d.")
        ax.plot(x, as_float(traj[name]["value"]), "o-", color="tab:blue", label="value")
        ax.set_title(name)
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
        ax.set_xlabel("training (sheet as built → learned)")
        ax.set_ylabel(name)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    if names:
        axes.ravel()[0].legend(fontsize=7)
    fig.suptitle(f"What training changed ({result['n_null']} null samples per point)")
    _save(fig, path)
    return path
