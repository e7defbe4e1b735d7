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


NODES = "node,x,y\na,0,0\nb,1,0\nc,0,1\n"
EDGES = "source,target,length\na,b,1\nb,c,1\nc,a,1\n"

BAD_CSV = [  # (nodes.csv, edges.csv, the error): each names the file and the line
    (NODES, EDGES + "a,b,5\n",
     r"edges.csv, line 5: edge a -> b is listed again \(first on line 2\)"),
    (NODES, "source,target\na,b\nb,c\nc,a\nc,a\n",
     r"edges.csv, line 5: edge c -> a is listed again \(first on line 4\)"),
    (NODES, EDGES.replace("b,c,1", "b,c,nan"),
     r"edges.csv, line 3, column 'length': expected a finite number, got 'nan'"),
    (NODES, EDGES.replace("b,c,1", "b,c,inf"), r"edges.csv, line 3, column 'length': .*'inf'"),
    (NODES, EDGES.replace("c,a,1", "c,a,-2"),
     r"edges.csv, line 4, column 'length': expected a length >= 0, got '-2'"),
    (NODES, EDGES.replace("c,a,1", "c,a,0"),
     r"edges.csv, line 4, column 'length': length 0 on an edge between two different nodes"),
    (NODES, EDGES.replace("a,b,1", "a,b,1e39"), r"line 2, column 'length': '1e39' is beyond "
                                                r"float32's range"),
    (NODES, EDGES.replace("a,b,1", "a,b,True"), r"line 2, column 'length': expected a number, "
                                                r"got 'True'"),
    (NODES.replace("b,1,0", "b,1,nan"), EDGES,
     r"nodes.csv, line 3, column 'y': expected a finite number, got 'nan'"),
    (NODES.replace("c,0,1", "c,-inf,1"), EDGES, r"nodes.csv, line 4, column 'x': .*'-inf'"),
    (NODES.replace("a,0,0", "a,4e38,0"), EDGES, r"nodes.csv, line 2, column 'x': '4e38' is "
                                                r"beyond float32's range"),
    (NODES.replace("a,0,0", "a,1e20,0"), "source,target\na,b\nb,c\nc,a\n",
     r"edges.csv with nodes.csv: Edge 'a' -> 'b': "
                                                r"its length from the positions overflows"),
    ("node,x,y\n", EDGES, r"nodes.csv has a header but no rows: list one node per line"),
    (NODES, "source,target,length\n", r"edges.csv has a header but no rows"),
    ("", EDGES, r"nodes.csv is empty: expected the header node,x,y"),
    (NODES, "\n\n", r"edges.csv is empty"),
    (NODES.replace(",", ";"), EDGES, r"nodes.csv is not comma-separated: its header 'node;x;y' "
                                     r"uses ';'"),
    (NODES, EDGES.replace(",", "\t"), r"edges.csv is not comma-separated: .* uses '\\t'"),
    ("node,x,Y\na,0,0\nb,1,0\nc,0,1\n", EDGES,  # was read as a 1-D sheet, y dropped
     r"nodes.csv: unknown column 'Y' in the header \(did you mean 'y'\?"),
    ("node, x,y\na,0,0\nb,1,0\nc,0,1\n", EDGES, r"unknown column ' x' .*did you mean 'x'"),
    (NODES, "source,target,weight\na,b,1\nb,c,1\nc,a,1\n",
     r"edges.csv: unknown column 'weight' in the header. Expected source,target\[,length\]"),
    ("node,x,y,\na,0,0,\nb,1,0,\nc,0,1,\n", EDGES, r"unknown column '' .*trailing comma"),
    ("node,x,x\na,0,0\nb,1,0\nc,0,1\n", EDGES, r"nodes.csv: the header names column 'x' twice"),
    ("id,x,y\na,0,0\nb,1,0\nc,0,1\n", EDGES, r"unknown column 'id'"),
    (NODES, "from,to\na,b\n", r"unknown column 'from'"),
    ("node,x,y\na,0\nb,1,0\nc,0,1\n", EDGES,
     r"nodes.csv, line 2: 2 field\(s\), but the header has 3 \(node,x,y\)"),
    ("node,x,y\na,0,0,9\nb,1,0\nc,0,1\n", EDGES,  # the extra value was dropped silently
     r"nodes.csv, line 2: 4 field\(s\), but the header has 3"),
    (NODES, "source,target,length\na,b\n", r"edges.csv, line 2: 2 field\(s\)"),
    ("node,x,y\n,0,0\nb,1,0\nc,0,1\n", EDGES, r"nodes.csv, line 2: the node id is empty"),
    ("node,x,y\n 1,0,0\n2,1,0\n3,0,1\n", "source,target\n1,2\n2,3\n3,1\n",
     r"edges.csv, line 2: edge 1 -> 2 names node '1', which nodes.csv lacks \(it has ' 1': "
     r"mind the spaces\)"),
    ("node,x,y,input_map\na,0,0,1e30\nb,1,0,\nc,0,1,\n", EDGES,
     r"nodes.csv, line 2, column 'input_map' \('1e30'\): expected the index \(>= 0\)"),
    ("node,x,y,input_map\na,0,0,-3\nb,1,0,\nc,0,1,\n", EDGES, r"line 2, column 'input_map'"),
    ("node,x,y\na,0,0\nb,0,0\nc,0,1\n", EDGES,
     r"edges.csv with nodes.csv: Columns \[0, 1\] \(nodes 'a', 'b'\) share a position"),
    (NODES, "source,target\na,b\nb,a\n", r"edges.csv with nodes.csv: 1 column\(s\) have no "
                                         r"incoming edges \(e.g. \[2\] \(nodes 'c'\)\)"),
    ("node,x,y\n\"a\nb\",0,0\nc,1,0\nc,2,0\n", EDGES,  # a quoted line break: lines still right
     r"nodes.csv, line 5: node 'c' is listed again \(first on line 4\)"),
]


@pytest.mark.parametrize("nodes,edges,match", BAD_CSV, ids=range(len(BAD_CSV)))
def test_bad_csv_geometry_names_file_and_line(tmp_path, nodes, edges, match):
    (tmp_path / "nodes.csv").write_text(nodes)
    (tmp_path / "edges.csv").write_text(edges)
    with pytest.raises(ValueError, match=match):
        read_geometry(tmp_path / "edges.csv", coords=str(tmp_path / "nodes.csv"))


def test_csv_with_a_byte_order_mark_self_loops_and_blank_lines_reads_as_without(tmp_path):
    (tmp_path / "nodes.csv").write_text(NODES)
    (tmp_path / "edges.csv").write_text(EDGES + "a,a,0\n")
    plain = read_geometry(tmp_path / "edges.csv", coords=str(tmp_path / "nodes.csv"))
    assert plain.num_edges == 4 and plain.edge_length.tolist() == [0.0, 1.0, 1.0, 1.0]
    (tmp_path / "nodes.csv").write_text("\ufeff" + NODES.replace("\n", "\r\n\n"),
                                        encoding="utf-8")  # Excel: BOM, CRLF
    (tmp_path / "edges.csv").write_text("\ufeff" + EDGES + "a,a,0\n", encoding="utf-8")
    other = read_geometry(tmp_path / "edges.csv", coords=str(tmp_path / "nodes.csv"))
    assert other.fingerprint() == plain.fingerprint() and other.labels == plain.labels
    assert torch.equal(other.edge_length, plain.edge_length)
    (tmp_path / "nodes.csv").write_bytes("node,x,y\nä,0,0\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"nodes.csv is not UTF-8 text \(byte 9: b'\\xe4'\)"):
        read_geometry(tmp_path / "edges.csv", coords=str(tmp_path / "nodes.csv"))


GRAPHML = """<?xml version="1.0"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
<key id="x" for="node" attr.name="x" attr.type="double"/>
<key id="y" for="node" attr.name="y" attr.type="double"/>
<key id="l" for="edge" attr.name="length" attr.type="double"/>
<graph edgedefault="directed">
<node id="a"><data key="x">0</data><data key="y">0</data></node>
<node id="b"><data key="x">1</data><data key="y">0</data></node>
<edge source="a" target="b"><data key="l">1</data></edge>
<edge source="b" target="a"><data key="l">1</data></edge>
</graph>
</graphml>
"""
EDGE_AB = '<edge source="a" target="b"><data key="l">1</data></edge>'
EDGE_BA = '<edge source="b" target="a"><data key="l">1</data></edge>'

BAD_GRAPHML = [
    (GRAPHML.replace(EDGE_BA, EDGE_BA + "\n" + EDGE_AB.replace(">1<", ">5<")),
     r"g.graphml, line 11: edge 'a' -> 'b' is listed again \(first on line 9\)"),
    (GRAPHML.replace('"directed"', '"undirected"'),  # a-b and b-a: one undirected edge, twice
     r"line 10: edge 'b' - 'a' is listed again \(first on line 9; in an undirected graph one "
     r"edge runs both ways\)"),
    (GRAPHML.replace(EDGE_BA, EDGE_BA + '\n<edge source="a" target="zz"/>'),
     r"g.graphml, line 11: an edge names node 'zz', which no <node> declares"),
    (GRAPHML.replace("</graph>", '</graph>\n<graph edgedefault="directed"></graph>'),
     r"g.graphml, line 12: a second <graph>; networkx reads only the first"),
    (GRAPHML.replace('<?xml version="1.0"?>', '<?xml version="1.0"?>\n<!DOCTYPE g [<!ENTITY '
                     'a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'),
     r"g.graphml, line 2: declares the XML entity 'a'"),
    (GRAPHML.replace('<data key="l">1</data></edge>\n<edge source="b"',
                     '<data key="l">-1</data></edge>\n<edge source="b"'),
     r"g.graphml: Edge 'a' -> 'b', 'length': expected a length >= 0, got -1.0"),
    (GRAPHML.replace('<data key="l">1</data></edge>\n<edge source="b"',
                     '<data key="l">NaN</data></edge>\n<edge source="b"'),
     r"g.graphml: Edge 'a' -> 'b', 'length': expected a finite number, got nan"),
    (GRAPHML.replace(EDGE_BA, '<edge source="b" target="a"/>'),
     r"g.graphml: Edge 'b' -> 'a' has no 'length' attribute. Give every edge a 'length', or "
     r"none of them"),
    (GRAPHML.replace('<data key="x">1</data>', '<data key="x">INF</data>'),
     r"g.graphml: Node 'b', coordinate 'x': expected a finite number, got inf"),
    (GRAPHML.replace('<data key="y">0</data></node>\n<node id="b">', '</node>\n<node id="b">'),
     r"g.graphml: Node 'a' has no 'pos' attribute \(only x\)"),
    (GRAPHML.replace('attr.name="x" attr.type="double"', 'attr.name="x" attr.type="boolean"'),
     r"g.graphml: Node 'a', coordinate 'x': expected a number, got the boolean False"),
    (GRAPHML.replace('attr.name="x" attr.type="double"', 'attr.name="x" attr.type="string"')
     .replace('<data key="x">1</data>', '<data key="x">one</data>'),
     r"g.graphml: Node 'b', coordinate 'x': expected a number, got 'one'"),
    ('<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
     '<graph edgedefault="directed"></graph></graphml>', r"g.graphml: The graph has no nodes"),
    ("", r"Cannot read .*g.graphml: no element found: line 1, column 0. Expected well-formed "
         r"GraphML"),
]


@pytest.mark.parametrize("text,match", BAD_GRAPHML, ids=range(len(BAD_GRAPHML)))
def test_bad_graphml_names_file_and_line_or_node(tmp_path, text, match):
    (tmp_path / "g.graphml").write_text(text)
    with pytest.raises(ValueError, match=match):
        read_geometry(tmp_path / "g.graphml")


GML = ('graph [\n directed 1\n node [ id 0 label "a" x 0 y 0 ]\n node [ id 1 label "b" x 1 y 0 ]'
       '\n edge [ source 0 target 1 ]\n edge [ source 1 target 0 ]\n]\n')


@pytest.mark.parametrize("text,match", [
    (GML.replace("id 1 ", ""), r"g.gml: node #1 has no 'id' attribute. Expected GML: .*unique "
                               r"'id' and 'label'"),
    (GML.replace('label "b"', 'label "a"'), r"g.gml: node label 'a' is duplicated"),
    (GML[:-2] + " edge [ source 0 target 1 ]\n]\n", r"g.gml: edge #2 \(0->1\) is duplicated"),
    (GML.replace("directed 1", "directed 1 multigraph 1")[:-2] + " edge [ source 0 target 1 ]\n"
     "]\n", r"g.gml: edge 'a' -> 'b' is listed more than once"),
    (GML.replace("x 1 y 0", 'x "one" y 0'), r"g.gml: Node 'b', coordinate 'x': expected a "
                                            r"number, got 'one'"),
    (GML.replace("x 1 y 0", "x 1 x 2 y 0"), r"g.gml: Node 'b', coordinate 'x': expected a "
                                            r"number, got \[1, 2\]"),
    ("", r"g.gml: input contains no graph"),
])
def test_bad_gml_names_file_and_node(tmp_path, text, match):
    (tmp_path / "g.gml").write_text(text)
    with pytest.raises(ValueError, match=match):
        read_geometry(tmp_path / "g.gml")


def test_gml_multigraph_without_parallel_edges_reads_as_a_graph(tmp_path):
    (tmp_path / "g.gml").write_text(GML)
    (tmp_path / "m.gml").write_text(GML.replace("directed 1", "directed 1 multigraph 1"))
    a, b = read_geometry(tmp_path / "g.gml"), read_geometry(tmp_path / "m.gml")
    assert a.fingerprint() == b.fingerprint() and a.num_edges == 2


@pytest.mark.parametrize("change,match", [
    (lambda G: G.nodes["a"].update(pos=(0.0, float("nan"))),
     r"Node 'a' has pos \(0.0, nan\): expected a finite number, got nan"),
    (lambda G: G.nodes["a"].update(pos=(True, 0.0)), r"Node 'a' has pos \(True, 0.0\), which is "
                                                     r"not a list of numbers"),
    (lambda G: G.nodes["a"].update(pos=(1 + 2j, 0.0)), r"which is not a list of numbers"),
    (lambda G: G.nodes["a"].update(pos=[[0.0, 1.0], [2.0, 3.0]]), r"expected a flat list"),
    (lambda G: G.nodes["a"].update(pos=""), r"Node 'a' has pos '': expected a flat list"),
    (lambda G: G.nodes["a"].update(pos="0 zero"), r"Node 'a' has pos '0 zero', which is not"),
    (lambda G: G.nodes["a"].update(input_map=True), r"Node 'a' has input_map True: expected"),
    (lambda G: G.edges["a", "b"].update(length="far"),
     r"Edge 'a' -> 'b', 'length': expected a number, got 'far'"),
    (lambda G: G.edges["a", "b"].update(length=float("inf")), r"expected a finite number"),
    (lambda G: G.edges["b", "a"].update(length=0.0), r"Edge 'b' -> 'a', 'length': length 0 on "
                                                     r"an edge between two different nodes"),
])
def test_from_networkx_names_the_node_or_edge(change, match):
    G = nx.DiGraph()
    G.add_node("a", pos=(0.0, 0.0))
    G.add_node("b", pos=(1.0, 0.0))
    G.add_edge("a", "b", length=1.0)
    G.add_edge("b", "a", length=1.0)
    assert from_networkx(G, length="length").num_edges == 2
    change(G)
    with pytest.raises(ValueError, match=match):
        from_networkx(G, length="length")
