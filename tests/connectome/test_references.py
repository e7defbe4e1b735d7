"""The fly optic lobe as a reference connectome on colgraph's hexagonal lattice."""
import importlib.util
import json

import numpy as np
import pytest

from colgraph.connectome import analyze, fly_optic_lobe
from colgraph.geometry import hex_lattice

FLYVIS = importlib.util.find_spec("flyvis") is not None


def _write(path, nodes, edges):
    path.write_text(json.dumps({"nodes": nodes, "edges": edges, "receptors": [],
                                "input_units": [], "output_units": []}))
    return path


def node(name, stride=(1, 1)):
    return {"name": name, "pattern": ["stride", list(stride)]}


def test_a_small_connectome_is_summed_per_column_pair(tmp_path):
    path = _write(tmp_path / "c.json", [node("A"), node("B"), node("S", (3, 2))], [
        {"src": "A", "tar": "B", "offsets": [[[0, 0], 5.0], [[1, 0], 2.0]]},
        {"src": "B", "tar": "A", "offsets": [[[1, 0], 3.0]]},
        {"src": "S", "tar": "A", "offsets": [[[0, 1], 7.0]]},
    ])
    G = fly_optic_lobe(extent=1, path=path)
    assert sorted(G.nodes) == sorted(hex_lattice(1).labels)  # the same columns and labels
    # A -> B and B -> A at offset (1, 0): 2 + 3 synapses per column pair, within the lattice
    assert G.edges["0,0", "1,0"]["weight"] == 5.0
    assert G.edges["-1,0", "0,0"]["weight"] == 5.0
    assert G.edges["0,0", "1,0"]["length"] == pytest.approx(1.0)
    assert not G.has_edge("1,0", "2,0")  # the target column lies outside extent 1
    assert G.edges["0,0", "0,1"]["weight"] == 7.0  # S only where u % 3 == 0 and v % 2 == 0
    assert not G.has_edge("1,0", "1,1") or G.edges["1,0", "1,1"]["weight"] != 7.0
    assert all(u != v for u, v in G.edges)  # offset 0: left out by default
    loops = fly_optic_lobe(extent=1, path=path, self_loops=True)
    assert loops.edges["0,0", "0,0"]["weight"] == 5.0
    only = fly_optic_lobe(extent=1, path=path, types=["A", "B"])
    assert not only.has_edge("0,0", "0,1")


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(types=["A", "Nope"]), ValueError, "Unknown cell type"),
    (dict(types="A"), TypeError, "list of cell type names"),
    (dict(extent=-1), ValueError, "extent >= 0"),
    (dict(extent=2.5), TypeError, "integer extent"),
])
def test_bad_requests_are_refused(tmp_path, kwargs, error, match):
    path = _write(tmp_path / "c.json", [node("A")], [])
    with pytest.raises(error, match=match):
        fly_optic_lobe(**{"extent": 1, "path": path, **kwargs})


def test_files_that_are_not_a_flyvis_connectome_are_refused(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"nodes": 3}))
    with pytest.raises(ValueError, match="not a flyvis connectome"):
        fly_optic_lobe(path=tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError):
        fly_optic_lobe(path=tmp_path / "broken.json")
    with pytest.raises(FileNotFoundError, match="No such file"):
        fly_optic_lobe(path=tmp_path / "missing.json")


@pytest.mark.skipif(not FLYVIS, reason="flyvis is not installed (pip install --no-deps flyvis)")
def test_the_fly_optic_lobe_from_flyvis():
    G = fly_optic_lobe(extent=4)
    assert G.number_of_nodes() == 61 == hex_lattice(4).num_columns
    assert G.number_of_edges() > 1500 and G.graph["synapses"] > 1e5
    assert len(G.graph["types"].split(",")) == 65
    lengths = np.array([d["length"] for *_, d in G.edges(data=True)])
    assert lengths.min() == pytest.approx(1.0)  # neighbouring columns are one spacing apart
    m = analyze(G, n_null=2, nulls=("degree", "prior"))
    assert m["weight_distance_rho"] < -0.5  # synapses fall with the columns' distance


def test_hex_lattice_areas_and_positions():
    geo = hex_lattice(5, input_size=64)
    assert geo.num_columns == 91 and geo.area("input").numel() == 64
    assert geo.area("output").numel() == 91
    centre = geo.labels.index("0,0")
    assert float(geo.pos[centre].norm()) == 0.0 and centre in geo.area("input").tolist()
    assert float(geo.edge_length.max()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="fewer than input_size=100"):
        hex_lattice(5, input_size=100)
