"""Bad geometry input is refused with the file, line, node or index named (never merged,
truncated or scrambled silently)."""
import networkx as nx
import pytest
import torch

from colgraph.geometry import Geometry, from_coords, from_networkx, grid, knn, read_geometry
from colgraph.geometry import exponential, line, ring, stack, uniform


def _nodes_csv(tmp_path, rows, edges="source,target\na,b\nb,a\n"):
    (tmp_path / "nodes.csv").write_text("node,x,y\n" + rows)
    (tmp_path / "edges.csv").write_text(edges)
    return tmp_path / "edges.csv", str(tmp_path / "nodes.csv")


def test_duplicate_node_in_csv_is_refused(tmp_path):
    edges, nodes = _nodes_csv(tmp_path, "a,0,0\nb,1,0\na,2,0\n")
    with pytest.raises(ValueError, match=r"nodes.csv, line 4: node 'a' is listed again "
                                         r"\(first on line 2\)"):
        read_geometry(edges, coords=nodes)


def test_csv_parse_errors_name_file_line_and_column(tmp_path):
    edges, nodes = _nodes_csv(tmp_path, "a,0,0\nb,one,0\n")
    with pytest.raises(ValueError, match=r"nodes.csv, line 3, column 'x': expected a number, "
                                         r"got 'one'"):
        read_geometry(edges, coords=nodes)
    edges, nodes = _nodes_csv(tmp_path, "a,0,0\nb,1,0\n",
                              "source,target,length\na,b,1\nb,a,far\n")
    with pytest.raises(ValueError, match=r"edges.csv, line 3, column 'length': expected a "
                                         r"number, got 'far'"):
        read_geometry(edges, coords=nodes)
    edges, nodes = _nodes_csv(tmp_path, "a,0,0\nb,1,0\n", "source,target\na,b\nb,c\n")
    with pytest.raises(ValueError, match=r"edges.csv, line 3: edge b -> c names node 'c'"):
        read_geometry(edges, coords=nodes)


def test_duplicate_node_in_graphml_is_refused(tmp_path):
    path = tmp_path / "g.graphml"
    G = nx.DiGraph()
    G.add_node("a", x=0.0, y=0.0)
    G.add_node("b", x=1.0, y=0.0)
    G.add_edges_from([("a", "b"), ("b", "a")])
    nx.write_graphml(G, path)
    assert read_geometry(path).num_columns == 2
    text = path.read_text()
    first = text.index('<node id="b"')
    block = text[first:text.index("</node>", first) + len("</node>")]
    path.write_text(text.replace(block, block + block.replace("1.0", "5.0")))
    with pytest.raises(ValueError, match=r"g.graphml, line 13: node id 'b' is declared "
                                         r"twice \(first on line 10\)"):
        read_geometry(path)
    (tmp_path / "broken.graphml").write_text("<graphml><graph>")
    with pytest.raises(ValueError, match=r"Cannot read .*broken.graphml"):
        read_geometry(tmp_path / "broken.graphml")


def test_from_networkx_names_the_node_without_a_position():
    G = nx.path_graph(3)
    for v in G:
        G.nodes[v]["pos"] = (float(v), 0.0)
    G.nodes[1]["pos"] = None
    with pytest.raises(ValueError, match="Node 1 has position None"):
        from_networkx(G)
    G.nodes[1]["pos"] = (1.0, 0.0, 2.0)
    with pytest.raises(ValueError, match=r"different dimensions 2 \(e.g. node 0\), 3 \(e.g. "
                                         r"node 1\)"):
        from_networkx(G)


@pytest.mark.parametrize("build,error,match", [
    (lambda: grid(2.5), TypeError, r"grid needs an integer width \(got 2.5"),
    (lambda: grid(4, True), TypeError, r"grid needs an integer height \(got True"),
    (lambda: stack([8, 4.5]), TypeError, r"stack needs an integer widths \(got 4.5"),
    (lambda: ring(3.0), TypeError, r"ring needs an integer n"),
    (lambda: line(1), ValueError, r"line needs n >= 2"),
    (lambda: grid(4, wiring=knn(0)), ValueError, r"knn\(k=0\) needs k >= 1 .*Raise "
                                                 r"geometry.wiring.k"),
    (lambda: grid(4, wiring=knn(16)), ValueError, r"k <= N - 1 = 15 .*Lower geometry.wiring.k"),
    (lambda: grid(4, wiring=knn(2.5)), TypeError, r"needs an integer k"),
    (lambda: grid(4, wiring=uniform(0)), ValueError, r"uniform\(k=0\) needs k >= 1"),
    (lambda: grid(4, wiring=exponential(m=20)), ValueError,
     r"Lower geometry.wiring.long_range"),
    (lambda: from_coords(torch.zeros(1, 2)), ValueError,
     r"A sheet of 1 column\(s\) cannot be wired with knn"),
])
def test_builders_refuse_bad_counts(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_fractional_indices_and_repeated_area_columns_are_refused():
    geo = grid(3, wiring=knn(2))
    base = dict(pos=geo.pos, edge_length=geo.edge_length)
    with pytest.raises(ValueError, match=r"integer column indices in edge_index, got 2.5"):
        Geometry(edge_index=geo.edge_index.float().index_fill(1, torch.tensor([0]), 2.5),
                 areas={}, **base)
    with pytest.raises(ValueError, match=r"integer column indices in area 'input', got 0.5"):
        Geometry(edge_index=geo.edge_index, areas={"input": [0.5, 1.0]}, **base)
    with pytest.raises(ValueError, match=r"Area 'input' lists column 2 2 times"):
        Geometry(edge_index=geo.edge_index, areas={"input": [1, 2, 2]}, **base)
    with pytest.raises(TypeError, match="got a boolean tensor"):
        Geometry(edge_index=geo.edge_index, areas={"input": torch.ones(9, dtype=bool)}, **base)
    ok = Geometry(edge_index=geo.edge_index.double(), areas={"input": [0.0, 1.0]}, **base)
    assert ok.edge_index.dtype == torch.long and ok.area("input").tolist() == [0, 1]


def test_lattice_of_the_wrong_shape_is_refused(tmp_path):
    from colgraph.training import train

    from conftest import TINY, compose

    base = [o for o in TINY if "widths" not in o]
    with pytest.raises(ValueError, match=r"is a 4 x 16 lattice .*8 x 8 grid of patches"):
        train(compose(base + ["geometry=grid", "geometry.width=16", "geometry.height=4"]),
              tmp_path)


def test_plot_draws_columns_in_no_area(tmp_path):
    """A sheet where most columns belong to no area still shows every column."""
    geo = from_coords(torch.rand(300, 2) * 10, knn(4), areas={"input": range(40),
                                                              "V1": range(40, 80)})
    ax = geo.plot(path=tmp_path / "g.png")
    grey = next(c for c in ax.collections if c.get_label() == "no area (220)")
    assert len(grey.get_offsets()) == 260  # 220 in no area + 40 only in the input alias
    v1 = next(c for c in ax.collections if c.get_label() == "V1")
    assert len(v1.get_offsets()) == 40 and ax.get_xlabel() == "x"
