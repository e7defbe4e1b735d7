"""The learned connectome: export to networkx / files and network-neuroscience analysis.

    >>> from colgraph.connectome import to_networkx, analyze   # doctest: +SKIP
    >>> G = to_networkx("runs/.../checkpoint.pt", loader="test")  # doctest: +SKIP
    >>> metrics = analyze(G)  # degrees, EDR fit, flow, modularity, ...  # doctest: +SKIP
"""
from .analysis import (analyze, area_flow, degree_stats, edr_fit, modularity, node_metrics,
                       receptive_fields, reciprocity, rich_club, small_world, weight_distance,
                       weighted_clustering, wiring)
from .nulls import NULLS, null_model, significance
from .compare import compare, plot_comparison, write_comparison
from .export import (WRITERS, ConnectomeSnapshots, add_node_metrics, adjacency, edge_data, read_connectome,
                     to_geometry, to_networkx, to_tables, write_connectome, write_json)
from .figures import FIGURES, plot_all, plot_sheet
from .modes import (MODE_FIGURES, Modes, activity_maps, connectome_modes, cotangent_laplacian,
                    geometric_modes, mode_analysis, plot_modes, plot_reconstruction,
                    reconstruct)

__all__ = ["ConnectomeSnapshots", "to_networkx", "edge_data", "add_node_metrics", "adjacency", "to_tables", "write_connectome", "read_connectome", "to_geometry",
           "write_json", "WRITERS", "analyze", "degree_stats", "reciprocity", "edr_fit", "wiring",
           "area_flow", "modularity", "small_world", "rich_club", "weight_distance",
           "receptive_fields", "node_metrics", "weighted_clustering", "plot_all", "plot_sheet", "FIGURES", "report", "compare",
           "plot_comparison", "write_comparison", "significance", "null_model", "NULLS",
           "Modes", "geometric_modes", "connectome_modes", "cotangent_laplacian", "reconstruct",
           "activity_maps", "mode_analysis", "plot_modes", "plot_reconstruction", "MODE_FIGURES"]


def report(model_or_path, out_dir, loader="test", max_batches=None, n_null: int = 3,
           edge_fraction: float = 0.5, seed: int = 0, nulls="auto",
           progress: bool = False, modes: int = 50) -> dict:
    """Export, analyse and draw a trained sheet: writes ``connectome.graphml``,
    ``metrics.json`` and the PNG figures into ``out_dir``; returns the metrics (``nulls``,
    ``n_null``: the null families and samples per family of :func:`analyze`).

    With data (``loader``), also the eigenmode analysis of :func:`mode_analysis` with
    ``modes`` modes (at most ``N - 1``; ``0``: none): the ``modes`` section of the metrics
    and the figures ``modes.png`` and ``reconstruction.png``."""
    import itertools
    import os
    from pathlib import Path

    from .arrays import check_settings
    from .nulls import check_families

    check_settings(n_null=n_null, edge_fraction=edge_fraction, seed=seed)  # before any work
    check_families(nulls)
    if isinstance(modes, bool) or not isinstance(modes, int) or modes < 0:
        raise ValueError(f"modes must be an integer >= 0 (got {modes!r}): the number of "
                         f"eigenmodes of the mode analysis, 0 for none.")
    model = model_or_path
    if isinstance(model_or_path, (str, os.PathLike)):  # loaded once, for both analyses
        from ..restore import load_model

        model, _, _, data = load_model(model_or_path, with_data=loader == "test")
        if loader == "test":
            from ..data import iterate_batches

            loader = iterate_batches(data.x_test, data.y_test, 256)
    if loader is not None and not isinstance(loader, str) and iter(loader) is loader:
        loader = list(itertools.islice(loader, max_batches))  # one pass only: kept for two
    G = add_node_metrics(to_networkx(model, loader=loader, max_batches=max_batches),
                         seed=seed)
    metrics = analyze(G, n_null=n_null, edge_fraction=edge_fraction, seed=seed, nulls=nulls,
                      progress=progress)
    section = None
    if loader is not None and modes:
        from .modes import _analysis

        n = G.number_of_nodes()
        k = min(modes, n - 1)
        section, geo_modes = _analysis(model, loader, k=k, graph=G, max_batches=max_batches)
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
