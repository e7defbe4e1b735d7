"""The placement report where a connectome is analysed and compared
(colgraph.connectome.analyze / compare with placement=True, comparison_table's placement
rows) and the placement figure of a stack, its areas side by side as the sheet figures draw
them (colgraph.connectome.figures._layout)."""
import networkx as nx
import numpy as np
import pytest

from colgraph.connectome import analyze, compare, comparison_table, plot_placement
from colgraph.connectome.compare import PLACEMENT_ROWS
from colgraph.connectome.figures import _layout
from colgraph.geometry import grid, knn, stack

WIRE = {"actual", "quadratic", "optimal", "random_mean", "random_std", "z",
        "actual_over_optimal", "excess"}


def _grid(scrambled=False):
    """An 8 x 8 k-NN grid connectome (weight 1 per edge); scrambled: the same graph with
    its columns at each other's positions."""
    G = grid(8, wiring=knn(8)).to_networkx()
    nx.set_edge_attributes(G, 1.0, "weight")
    if scrambled:
        pos = [G.nodes[v]["pos"] for v in G.nodes]
        for v, i in zip(G.nodes, np.random.default_rng(0).permutation(len(pos))):
            G.nodes[v]["pos"] = pos[i]
        for u, v in G.edges:  # lengths from the new positions
            del G.edges[u, v]["length"]
    return G


def test_analyze_with_placement_has_the_section():
    out = analyze(_grid(), n_null=0, placement=True)
    section = out["placement"]
    assert WIRE <= set(section["wire"]) and "notes" in section
    assert set(section["areas"]) == {"sheet", "input", "output"}
    assert section["wire"]["actual"] == pytest.approx(section["wire"]["optimal"])
    assert "placement" not in analyze(_grid(), n_null=0)  # off by default


def test_analyze_placement_without_positions_is_refused_before_any_work(monkeypatch):
    G = nx.gnp_random_graph(30, 0.2, seed=0, directed=True)
    import colgraph.connectome.analysis as analysis

    def no_work(*args, **kwargs):
        raise AssertionError("analyze did work before refusing")

    monkeypatch.setattr(analysis, "_a", no_work)
    with pytest.raises(ValueError, match="needs every column's position.*'pos'.*"
                                         "placement=False"):
        analyze(G, placement=True)


def test_compare_with_placement_scrambled_has_more_excess():
    out = compare(_grid(), _grid(scrambled=True), names=("grid", "scrambled"), n_null=0,
                  placement=True)
    grid_wire, scr_wire = out["placement"]["grid"]["wire"], out["placement"]["scrambled"]["wire"]
    assert grid_wire["excess"] == pytest.approx(0.0, abs=1e-9)
    assert scr_wire["excess"] > 0.5 > grid_wire["excess"]
    assert scr_wire["actual"] > 2 * grid_wire["actual"]
    table = comparison_table(out)
    for row in PLACEMENT_ROWS:
        assert row in table
    line = next(ln for ln in table.splitlines() if ln.startswith("wire_excess"))
    assert line.split()[1:] == ["0", f"{scr_wire['excess']:.3g}"]
    assert "wire_excess" not in comparison_table(compare(_grid(), _grid(scrambled=True),
                                                         n_null=0))


def test_compare_placement_of_a_graph_without_positions_is_none_with_a_note():
    H = nx.gnp_random_graph(40, 0.2, seed=1, directed=True)
    out = compare(_grid(), H, names=("grid", "random"), n_null=0, placement=True)
    assert out["placement"]["random"] is None
    assert out["placement"]["grid"]["wire"]["actual"] > 0
    assert any("'random' has no node positions" in note for note in out["notes"])
    line = next(ln for ln in comparison_table(out).splitlines() if ln.startswith("wire_z"))
    assert line.split()[-1] == "n/a"


def test_stack_layout_puts_areas_side_by_side():
    geo = stack([6, 4], wiring=knn(6))
    pos = geo.pos.double().numpy()
    areas = {k: v.numpy() for k, v in geo.areas.items()}
    xy, kind = _layout(pos, areas)
    assert kind == "areas" and xy.shape == (geo.num_columns, 2)
    lo, hi = [(xy[areas[a], 0].min(), xy[areas[a], 0].max()) for a in ("area0", "area1")]
    assert lo[1] < hi[0]  # area0's x range ends before area1's begins: no overlap
    # a point at a column's position is drawn where the column is, whatever the order
    perm = np.random.default_rng(0).permutation(geo.num_columns)
    moved, _ = _layout(pos, areas, at=pos[perm])
    np.testing.assert_allclose(moved, xy[perm])
    assert _layout(pos)[1] == "3d"  # without areas: drawn in 3-D, not overlapping either


def test_plot_placement_of_a_stack(tmp_path):
    geo = stack([6, 4], wiring=knn(6))
    pos = geo.pos.double().numpy()
    after = pos[np.random.default_rng(0).permutation(len(pos))]
    path = tmp_path / "placement.png"
    plot_placement(pos, after, path, cost=[3.0, 2.0], areas=geo.areas)
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match=r"area 'area1' as integer indices in \[0, 51\]"):
        plot_placement(pos, after, path, areas={"area1": [50, 99]})
