"""The learned connectome: export to networkx / files and network-neuroscience analysis.

    >>> from colgraph.connectome import to_networkx, analyze   # doctest: +SKIP
    >>> G = to_networkx("runs/.../checkpoint.pt", loader="test")  # doctest: +SKIP
    >>> metrics = analyze(G)  # degrees, EDR fit, flow, modularity, ...  # doctest: +SKIP
"""
from .analysis import (analyze, area_flow, degree_stats, edr_fit, modularity, node_metrics,
                       receptive_fields, reciprocity, rich_club, small_world, weight_distance,
                       weighted_clustering, wiring)
from .compare import compare, plot_comparison, write_comparison
from .export import (WRITERS, ConnectomeSnapshots, add_node_metrics, adjacency, edge_data, read_connectome,
                     to_geometry, to_networkx, to_tables, write_connectome, write_json)
from .figures import FIGURES, plot_all, plot_sheet
from .maps import map_correlation, map_report, morans_i
from .nulls import spatial_nulls, spin_indices

__all__ = ["ConnectomeSnapshots", "to_networkx", "edge_data", "add_node_metrics", "adjacency", "to_tables", "write_connectome", "read_connectome", "to_geometry",
           "write_json", "WRITERS", "analyze", "degree_stats", "reciprocity", "edr_fit", "wiring",
           "area_flow", "modularity", "small_world", "rich_club", "weight_distance",
           "receptive_fields", "node_metrics", "weighted_clustering", "plot_all", "plot_sheet", "FIGURES", "report", "compare",
           "plot_comparison", "write_comparison", "morans_i", "map_correlation", "map_report",
           "spatial_nulls", "spin_indices"]


def report(model_or_path, out_dir, loader="test", max_batches=None, n_null: int = 3,
           edge_fraction: float = 0.5, seed: int = 0) -> dict:
    """Export, analyse and draw a trained sheet: writes ``connectome.graphml``,
    ``metrics.json`` and the PNG figures into ``out_dir``; returns the metrics."""
    from pathlib import Path

    from .arrays import check_settings

    check_settings(n_null=n_null, edge_fraction=edge_fraction, seed=seed)  # before any work
    G = add_node_metrics(to_networkx(model_or_path, loader=loader, max_batches=max_batches),
                         seed=seed)
    metrics = analyze(G, n_null=n_null, edge_fraction=edge_fraction, seed=seed)
    out_dir = Path(out_dir)  # written only once the analysis stands (nothing for a bad graph)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_connectome(G, out_dir / "connectome.graphml")
    plot_all(G, metrics, out_dir)
    write_json(out_dir / "metrics.json", metrics)
    return metrics
