"""The learned connectome: export to networkx / files and network-neuroscience analysis.

    >>> from colgraph.connectome import to_networkx, analyze   # doctest: +SKIP
    >>> G = to_networkx("runs/.../checkpoint.pt", loader="test")  # doctest: +SKIP
    >>> metrics = analyze(G)  # degrees, EDR fit, flow, modularity, ...  # doctest: +SKIP
"""
from .analysis import (analyze, area_flow, degree_stats, edr_fit, modularity, node_metrics,
                       receptive_fields, reciprocity, rich_club, small_world, weight_distance,
                       weighted_clustering, wiring)
from .nulls import NULLS, null_model, significance
from .placement import (Placement, assign_sites, placement_report, plot_placement,
                        quadratic_placement, swap_placement, placement_wire)
from .changes import changes, plot_changes, prior_connectome, run_changes
from .compare import compare, comparison_table, plot_comparison, write_comparison
from .references import fly_optic_lobe
from .export import (WRITERS, ConnectomeSnapshots, add_node_metrics, adjacency, edge_data, read_connectome,
                     to_geometry, to_networkx, to_tables, write_connectome, write_json)
from .generative import (MODELS, energy, fit_generative, generate, ks_statistics,
                         plot_energy_landscape, radius_candidates)
from .figures import FIGURES, plot_all, plot_selectivity, plot_sheet
from .maps import map_correlation, map_report, morans_i
from .map_nulls import spatial_nulls, spin_indices
from .selectivity import add_selectivity, class_selectivity, selectivity_from_responses
from .view import ConnectomeView, view
from .modes import (MODE_FIGURES, Modes, activity_maps, connectome_modes, cotangent_laplacian,
                    geometric_modes, mode_analysis, plot_modes, plot_reconstruction,
                    reconstruct)

__all__ = ["ConnectomeSnapshots", "to_networkx", "edge_data", "add_node_metrics", "adjacency", "to_tables", "write_connectome", "read_connectome", "to_geometry",
           "write_json", "WRITERS", "analyze", "degree_stats", "reciprocity", "edr_fit", "wiring",
           "area_flow", "modularity", "small_world", "rich_club", "weight_distance",
           "receptive_fields", "node_metrics", "weighted_clustering", "plot_all", "plot_sheet", "FIGURES", "report", "compare",
           "plot_comparison", "write_comparison", "morans_i", "map_correlation", "map_report",
           "spatial_nulls", "spin_indices", "class_selectivity", "selectivity_from_responses",
           "add_selectivity", "plot_selectivity", "significance", "null_model", "NULLS",
           "changes", "run_changes", "prior_connectome", "plot_changes", "fly_optic_lobe",
           "Modes", "geometric_modes", "connectome_modes", "cotangent_laplacian", "reconstruct",
           "activity_maps", "mode_analysis", "plot_modes", "plot_reconstruction", "MODE_FIGURES",
           "generate", "energy", "ks_statistics", "fit_generative", "plot_energy_landscape",
           "MODELS", "radius_candidates", "comparison_table", "Placement",
           "quadratic_placement", "assign_sites", "swap_placement", "placement_wire",
           "placement_report", "plot_placement", "view", "ConnectomeView"]


def report(model_or_path, out_dir, loader="test", max_batches=None, n_null: int = 3,
           edge_fraction: float = 0.5, seed: int = 0, n_perm: int = 1000, nulls="auto",
           progress: bool = False, modes: int = 50) -> dict:
    """Export, analyse and draw a trained sheet: writes ``connectome.graphml``,
    ``metrics.json`` and the PNG figures into ``out_dir``; returns the metrics (``nulls``,
    ``n_null``: the null families and samples per family of :func:`analyze`).

    With labelled data (``loader`` yields ``(x, y)`` with class labels, or ``"test"``), each
    column's class selectivity (:func:`class_selectivity`) becomes the node attributes
    ``selectivity`` and ``preferred_class`` and the figure ``selectivity.png``. The
    ``maps`` section of the metrics (:func:`map_report`) holds Moran's I of the per-column
    metrics and a map correlation against ``n_perm`` spatial null maps. With data, also the
    eigenmode analysis of :func:`mode_analysis` with ``modes`` modes (at most ``N - 1``;
    ``0``: none): the ``modes`` section of the metrics and the figures ``modes.png`` and
    ``reconstruction.png``."""
    from pathlib import Path

    from .arrays import check_settings
    from .map_nulls import _check_settings
    from .nulls import check_families

    check_settings(n_null=n_null, edge_fraction=edge_fraction, seed=seed)  # before any work
    check_families(nulls)
    _check_settings(n_perm, seed)
    if isinstance(modes, bool) or not isinstance(modes, int) or modes < 0:
        raise ValueError(f"modes must be an integer >= 0 (got {modes!r}): the number of "
                         f"eigenmodes of the mode analysis, 0 for none.")
    model_or_path, loader = _read_once(model_or_path, loader)
    G = add_node_metrics(to_networkx(model_or_path, loader=loader, max_batches=max_batches),
                         seed=seed)
    notes = []
    if loader is not None:
        from .selectivity import has_labels

        if has_labels(next(iter(loader), None)):
            add_selectivity(G, class_selectivity(model_or_path, loader, max_batches))
        else:
            notes.append("selectivity: n/a: the loader's batches carry no class labels "
                         "(x, y)")
    metrics = analyze(G, n_null=n_null, edge_fraction=edge_fraction, seed=seed, nulls=nulls,
                      progress=progress)
    maps = metrics["maps"] = map_report(G, n_perm=n_perm, seed=seed)
    notes += [f"maps: Moran's I of {k}: {v['note']}" for k, v in maps["morans_i"].items()
              if v.get("note")]
    if maps["correlation"].get("note"):
        notes.append(f"maps: {maps['correlation']['a']} vs {maps['correlation']['b']}: "
                     f"{maps['correlation']['note']}")
    if notes:
        metrics["notes"] = metrics.get("notes", []) + notes
    section = None
    if loader is not None and modes:
        from .modes import _analysis

        n = G.number_of_nodes()
        k = min(modes, n - 1)
        section, geo_modes = _analysis(model_or_path, loader, k=k, graph=G,
                                       max_batches=max_batches)
        if k < modes:
            section.setdefault("notes", []).insert(
                0, f"k = {k}: {modes} modes asked, but a sheet of {n} columns has {n - 1} "
                   f"besides the constant")
        metrics["modes"] = section
    out_dir = Path(out_dir)  # written only once the analysis stands (nothing for a bad graph)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_connectome(G, out_dir / "connectome.graphml")
    plot_all(G, metrics, out_dir)
    if section is not None:
        plot_modes(G, geo_modes, out_dir / MODE_FIGURES[0])
        plot_reconstruction(section, out_dir / MODE_FIGURES[1])
    write_json(out_dir / "metrics.json", metrics)
    return metrics


class _TestBatches:
    """A checkpoint's test set as ``(x, y)`` batches of 256, readable more than once."""

    def __init__(self, data) -> None:
        self.data = data

    def __iter__(self):
        from ..data import iterate_batches

        return iterate_batches(self.data.x_test, self.data.y_test, 256)


def _read_once(model_or_path, loader):
    """A checkpoint loaded once (its test set for ``loader="test"``) and a one-shot loader
    (a generator) kept as a list: the export and the selectivity both read them."""
    import os

    if isinstance(model_or_path, (str, os.PathLike)):
        from .export import _unwrap

        model_or_path, _, _, data = _unwrap(model_or_path, with_data=loader == "test")
        if loader == "test":
            loader = _TestBatches(data)
    if loader is not None and not isinstance(loader, str) and iter(loader) is loader:
        loader = list(loader)
    return model_or_path, loader
