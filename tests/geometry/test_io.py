import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from colgraph.geometry import from_mesh, from_networkx, knn, read_geometry, sphere


def positioned(G, dim=2, seed=0):
    rng = np.random.default_rng(seed)
    for v in G:
        G.nodes[v]["pos"] = tuple(rng.random(dim) * 10)
    return G


@st.composite
def graphs(draw):
    n = draw(st.integers(3, 25))
    directed = draw(st.booleans())
    p = draw(st.floats(0.2, 0.9))
    seed = draw(st.integers(0, 10_000))
    G = nx.gnp_random_graph(n, p, seed=seed, directed=directed)
    G.add_edges_from((i, (i + 1) % n) for i in range(n))  # every node gets an input
    if directed:
        G.add_edges_from(((i + 1) % n, i) for i in range(n))
    labels = {i: draw(st.sampled_from([f"n{i}", (i, "x"), i * 7 + 1000])) for i in range(n)}
    G = nx.relabel_nodes(G, labels)
    return positioned(G, dim=draw(st.integers(1, 3)), seed=seed)


@settings(max_examples=40, deadline=None)
@given(graphs())
def test_networkx_round_trip(G):
    geo = from_networkx(G)
    assert geo.labels == list(G.nodes)
    E = G.number_of_edges() * (1 if G.is_directed() else 2)
    assert geo.num_edges == E
    key = geo.edge_index[1] * geo.num_columns + geo.edge_index[0]
    assert (key[1:] > key[:-1]).all()  # canonical, no duplicates
    src, dst = geo.edge_index
    assert torch.allclose(geo.edge_length, (geo.pos[src] - geo.pos[dst]).norm(dim=1))
    back = geo.to_networkx()
    assert list(back.nodes) == list(G.nodes)
    for v in G:
        assert np.allclose(back.nodes[v]["pos"], G.nodes[v]["pos"], atol=1e-5)
    expected = set(G.edges) if G.is_directed() else set(G.edges) | {(v, u) for u, v in G.edges}
    assert set(back.edges) == expected
    again = from_networkx(back, length="length")
    assert torch.equal(again.edge_index, geo.edge_index)
    assert torch.allclose(again.edge_length, geo.edge_length)


def test_directed_edges_keep_direction_and_lengths_and_areas():
    G = nx.DiGraph()
    G.add_node("a", pos=(0, 0), area="V1,input")
    G.add_node("b", pos=(1, 0), area=["V2", "output"])
    G.add_edge("a", "b", length=2.5)
    G.add_edge("b", "a", length=3.0)
    geo = from_networkx(G, length="length")
    assert geo.edge_index.tolist() == [[1, 0], [0, 1]]  # b -> a first (target 0)
    assert geo.edge_length.tolist() == [3.0, 2.5]
    assert geo.area("input").tolist() == [0] and geo.area("V2").tolist() == [1]


def test_networkx_errors():
    G = nx.path_graph(3)
    with pytest.raises(ValueError, match="Node 0 has no 'pos' attribute"):
        from_networkx(G)
    positioned(G)
    G.nodes[1]["pos"] = (1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="different dimensions"):
        from_networkx(G)
    positioned(G)
    with pytest.raises(ValueError, match="has no 'len' attribute"):
        from_networkx(G, length="len")
    with pytest.raises(TypeError, match="multigraph"):
        from_networkx(nx.MultiGraph(G))


def two_node_graph():
    G = nx.Graph(name="tiny")
    for i in range(4):
        G.add_node(f"c{i}", x=float(i), y=float(i % 2), area="input" if i < 2 else "output")
    G.add_edges_from([("c0", "c1"), ("c1", "c2"), ("c2", "c3")])
    return G


@pytest.mark.parametrize("fmt", ["graphml", "gml"])
def test_read_graph_files(tmp_path, fmt):
    G = two_node_graph()
    path = tmp_path / f"sheet.{fmt}"
    getattr(nx, f"write_{fmt}")(G, path)
    geo = read_geometry(path)
    assert geo.labels == ["c0", "c1", "c2", "c3"] and geo.num_edges == 6
    assert geo.area("output").tolist() == [2, 3]


def test_read_csv(tmp_path):
    (tmp_path / "nodes.csv").write_text("node,x,y,area\na,0,0,input\nb,1,0,\nc,2,1,output\n")
    (tmp_path / "edges.csv").write_text("source,target,length\na,b,1.5\nb,c,2\nc,a,1\n")
    geo = read_geometry(tmp_path / "edges.csv", coords=tmp_path / "nodes.csv")
    assert geo.labels == ["a", "b", "c"]
    assert geo.edge_index.tolist() == [[2, 0, 1], [0, 1, 2]]
    assert geo.edge_length.tolist() == [1.0, 1.5, 2.0]
    (tmp_path / "bad.csv").write_text("source,target\na,z\n")
    with pytest.raises(ValueError, match="names node 'z'"):
        read_geometry(tmp_path / "bad.csv", coords=tmp_path / "nodes.csv")
    with pytest.raises(ValueError, match="needs a coordinates CSV"):
        read_geometry(tmp_path / "edges.csv")
    nx.write_graphml(two_node_graph(), tmp_path / "g.graphml")
    with pytest.raises(ValueError, match=r"goes with an edge-list CSV only; g.graphml holds its "
                                         r"own positions. Unset geometry.coords"):
        read_geometry(tmp_path / "g.graphml", coords=tmp_path / "nodes.csv")  # was ignored


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Geometry file not found"):
        read_geometry(tmp_path / "nope.graphml")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="Unsupported geometry file 'x.json'"):
        read_geometry(tmp_path / "x.json")


def icosphere(n=400):
    from scipy.spatial import ConvexHull

    pts = sphere(n, wiring=knn(3)).pos.numpy()
    return pts, ConvexHull(pts).simplices


def test_mesh_edges_and_lengths():
    verts, faces = icosphere()
    geo = from_mesh(verts, faces)
    mesh_edges = {tuple(sorted(e)) for f in faces for e in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))}
    assert geo.num_edges == 2 * len(mesh_edges)
    src, dst = geo.edge_index
    assert torch.allclose(geo.edge_length, (geo.pos[src] - geo.pos[dst]).norm(dim=1))
    assert torch.allclose(from_mesh(verts, faces, geodesic=True).edge_length, geo.edge_length)


def test_mesh_k_ring_and_geodesic():
    verts, faces = icosphere()
    one, two = from_mesh(verts, faces), from_mesh(verts, faces, k_ring=2)
    assert two.num_edges > 2 * one.num_edges
    geo2 = from_mesh(verts, faces, k_ring=2, geodesic=True)
    assert torch.equal(geo2.edge_index, two.edge_index)
    assert (geo2.edge_length >= two.edge_length - 1e-5).all()  # paths >= straight lines
    assert (geo2.edge_length > two.edge_length + 1e-4).any()
    # a two-hop geodesic is the sum of two mesh edges at most
    assert geo2.edge_length.max() <= 2 * one.edge_length.max() + 1e-5


def test_mesh_errors():
    verts, faces = icosphere(50)
    with pytest.raises(ValueError, match="Faces index vertices outside"):
        from_mesh(verts, faces + 100)
    with pytest.raises(ValueError, match=r"faces \[F, 3\]"):
        from_mesh(verts, faces[:, :2])
    with pytest.raises(ValueError, match=r"integer column indices in faces, got 2.5"):
        from_mesh(verts, np.where(faces == 2, 2.5, faces))  # was truncated to vertex 2
    bad = verts.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"'pos' has NaN/inf at columns \[3\]"):
        from_mesh(bad, faces)


def test_with_wiring_keeps_the_sheet_and_adds_edges():
    import torch
    from colgraph.geometry import exponential, from_mesh, knn

    # a mesh with geodesic edge lengths: those must survive, the new edges are measured
    verts = torch.tensor([[0., 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.5], [2, 0, 0], [2, 1, 0]])
    faces = torch.tensor([[0, 1, 2], [1, 3, 2], [1, 4, 3], [4, 5, 3]])
    mesh = from_mesh(verts, faces, k_ring=2, geodesic=True, areas={"input": [0, 1]})
    more = mesh.with_wiring(exponential(m=1, lam=2.0))
    old = {(s, t): ln for (s, t), ln in zip(mesh.edge_index.t().tolist(), mesh.edge_length.tolist())}
    new = {(s, t): ln for (s, t), ln in zip(more.edge_index.t().tolist(), more.edge_length.tolist())}
    assert old.items() <= new.items()  # every mesh edge, with its geodesic length
    added = [e for e in new if e not in old]
    assert added and all(abs(new[e] - float((verts[e[0]] - verts[e[1]]).norm())) < 1e-5
                         for e in added)
    assert torch.equal(more.area("input"), mesh.area("input")) and torch.equal(more.pos, mesh.pos)
    assert more.name.endswith("+exponential")
    again = mesh.with_wiring(knn(2))  # knn edges the mesh already has are not doubled
    assert again.num_edges == len(set(old) | {tuple(e) for e in knn(2)(verts).t().tolist()})


def test_with_wiring_refuses_what_is_not_a_rule():
    import pytest
    from colgraph.geometry import grid, knn

    with pytest.raises(TypeError, match=r"with_wiring expects wiring rules .* got str"):
        grid(4, wiring=knn(2)).with_wiring("knn")
    with pytest.raises(TypeError, match=r"got none"):
        grid(4, wiring=knn(2)).with_wiring()


@pytest.mark.parametrize("suffix", [".graphml", ".gml", ".csv"])
def test_write_geometry_round_trips(tmp_path, suffix):
    import torch
    from colgraph.geometry import read_geometry, stack, knn, write_geometry

    geo = stack([4, 2], wiring=knn(5))
    geo.input_map = torch.cat([torch.arange(16).flip(0), torch.full((4,), -1)])
    path = write_geometry(geo, tmp_path / f"sheet{suffix}")
    coords = str(tmp_path / "sheet_nodes.csv") if suffix == ".csv" else None
    back = read_geometry(path, coords=coords)
    assert torch.allclose(back.pos, geo.pos) and torch.equal(back.edge_index, geo.edge_index)
    assert torch.allclose(back.edge_length, geo.edge_length)
    assert {k: v.tolist() for k, v in back.areas.items()} == \
        {k: v.tolist() for k, v in geo.areas.items()}
    assert back.input_map.tolist() == geo.input_map.tolist()


def test_write_geometry_refuses_what_files_cannot_hold(tmp_path):
    import torch
    from colgraph.geometry import from_coords, grid, knn, write_geometry

    with pytest.raises(ValueError, match=r"Unsupported geometry file 'g.json'"):
        write_geometry(grid(3, wiring=knn(2)), tmp_path / "g.json")
    with pytest.raises(ValueError, match=r"stores x, y, z: this geometry has 4 dimensions"):
        write_geometry(from_coords(torch.rand(10, 4), knn(3)), tmp_path / "g.graphml")


def test_pyg_round_trip():
    import torch
    from torch_geometric.data import Data
    from colgraph.geometry import from_pyg, knn, stack

    geo = stack([4, 2], wiring=knn(5))
    data = geo.to_pyg()
    assert isinstance(data, Data) and data.num_nodes == geo.num_columns
    assert data.edge_attr.shape == (geo.num_edges, 1)
    assert int(data.area_input.sum()) == 16 and data.area_input.dtype == torch.bool
    back = from_pyg(data, name="back")
    assert torch.equal(back.edge_index, geo.edge_index) and torch.allclose(back.pos, geo.pos)
    assert torch.allclose(back.edge_length, geo.edge_length)
    assert back.area("output").tolist() == geo.area("output").tolist()
    # lengths default to Euclidean; a bad mask and a missing pos are refused
    plain = Data(pos=geo.pos, edge_index=geo.edge_index)
    assert torch.allclose(from_pyg(plain).edge_length, geo.edge_length)
    with pytest.raises(ValueError, match=r"from_pyg needs a Data with 'pos'"):
        from_pyg(Data(edge_index=geo.edge_index, num_nodes=20))
    plain.area_bad = torch.ones(3, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"data.area_bad must be a node mask of shape \[20\]"):
        from_pyg(plain)


def test_one_function_called_to_networkx():
    """A geometry converts itself (geo.to_networkx(), geo.to_pyg()); the one public
    to_networkx function is the connectome's (a trained model's learned graph)."""
    import colgraph.connectome
    import colgraph.geometry

    assert not hasattr(colgraph.geometry, "to_networkx")
    assert not hasattr(colgraph.geometry, "to_pyg")
    assert callable(colgraph.connectome.to_networkx)


def test_valid_files_read_exactly_as_before(tmp_path):
    """The stricter readers change nothing on valid files: the shipped example and files
    written by write_geometry give the same sheets, bit for bit (prints taken before the
    checks were added)."""
    import hashlib
    from pathlib import Path

    from colgraph.geometry import grid, stack, torus, write_geometry

    example = Path(__file__).parents[2] / "examples" / "two_areas.graphml"
    geo = read_geometry(example)
    assert geo.fingerprint() == "417585dbc825520c"
    assert hashlib.sha1(geo.edge_length.numpy().tobytes()).hexdigest()[:10] == "85ac05169d"
    assert geo.labels[:2] == ["V1-r0c0", "V1-r0c1"]
    sheets = {"stack": (stack([4, 2], wiring=knn(5)), "ad684cdfbedd4cad"),
              "grid": (grid(5, wiring=knn(4)), "8a197b75b4d01adf"),
              "sphere": (sphere(30, wiring=knn(4)), "b46ae845e7c71204"),
              "torus": (torus(4, wiring=knn(4)), "f8bba2e89c0b4f5d")}
    sheets["stack"][0].input_map = torch.cat([torch.arange(16).flip(0), torch.full((4,), -1)])
    for name, (sheet, print_) in sheets.items():
        assert sheet.fingerprint() == print_, name
        for suffix in (".graphml", ".gml", ".csv"):
            path = write_geometry(sheet, tmp_path / f"{name}{suffix}")
            back = read_geometry(path, coords=str(tmp_path / f"{name}_nodes.csv")
                                 if suffix == ".csv" else None)
            assert back.fingerprint() == print_, (name, suffix)
            assert torch.equal(back.edge_length, sheet.edge_length), (name, suffix)
            assert back.labels == [str(i) for i in range(sheet.num_columns)]
            if sheet.input_map is not None:
                assert torch.equal(back.input_map, sheet.input_map)
