"""The patch -> column map: exact on lattices, nearest-position elsewhere, explicit when the
geometry says so, and a warning when it tears neighbourhoods apart."""
import math
import warnings

import matplotlib
import networkx as nx
import pytest
import torch

matplotlib.use("Agg")

from colgraph import ColumnformerConfig
from colgraph.config import TaskConfig
from colgraph.geometry import (from_coords, from_networkx, grid, knn, read_geometry, stack,
                               write_geometry)
from colgraph.tasks import ImageClassification, InputMap

TASK = TaskConfig(name="classify_image")


def hexagonal(rows, cols, transpose=False):
    pts = torch.tensor([(c + 0.5 * (r % 2), r * math.sqrt(3) / 2)
                        for r in range(rows) for c in range(cols)])
    return pts[:, [1, 0]] if transpose else pts


def test_grid_and_stack_maps_are_the_identity_row_major():
    for geo in (grid(8, wiring=knn(4)), stack([8, 4], wiring=knn(5))):
        m = InputMap.fit(geo, "input", (8, 8))
        assert m.method == "nearest"
        assert torch.equal(m.column_of_patch, geo.area("input"))  # row-major positions
        assert torch.allclose(m.stretch(), torch.ones(2 * 8 * 7))


@pytest.mark.parametrize("transpose", [False, True])
def test_hexagonal_lattice_keeps_neighbours_close(transpose):
    # the case: sorting positions put vertically adjacent pixels 6.3 units apart
    geo = from_coords(hexagonal(8, 8, transpose), knn(6), areas={"input": torch.arange(64)})
    m = InputMap.fit(geo, "input", (8, 8))
    s = m.stretch()
    assert float(s.max()) < 1.3 and float(s.median()) == pytest.approx(1.0, abs=0.1)
    cols = m.column_of_patch.view(8, 8)
    pos = geo.pos
    d_down = (pos[cols[1:]] - pos[cols[:-1]]).norm(dim=-1)
    assert float(d_down.max()) < 1.2  # vertically adjacent pixels on neighbouring columns
    assert sorted(m.patch_of_slot.tolist()) == list(range(64))  # one-to-one


def test_scattered_area_warns_and_the_model_still_builds():
    # 64 columns on a circle: the patch grid's interior has nowhere near to go
    angle = torch.arange(64) * 2 * math.pi / 64
    pos = 10 * torch.stack([angle.cos(), angle.sin()], 1)
    geo = from_coords(pos, knn(6), areas={"input": torch.arange(64), "output": torch.arange(8)})
    with pytest.warns(UserWarning, match=r"distorts the image's neighbourhoods.*input_map"):
        ImageClassification(geo, ColumnformerConfig(channels=8, steps=2), TASK, (1, 8, 8), 10)


def test_lattice_area_raises_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImageClassification(stack([4, 2], wiring=knn(5)), ColumnformerConfig(channels=8, steps=2),
                            TASK, (1, 8, 8), 10)


def _graph_with_map(patch):
    G = nx.grid_2d_graph(2, 2)
    for (i, j) in G:
        G.nodes[(i, j)].update(pos=(float(i), float(j)), area="input,output",
                               input_map=patch[(i, j)])
    return G


def test_explicit_input_map_wins_and_survives_files(tmp_path):
    patch = {(0, 0): 3, (0, 1): 2, (1, 0): 1, (1, 1): 0}  # a flipped map, by the user's choice
    geo = from_networkx(_graph_with_map(patch))
    m = InputMap.fit(geo, "input", (2, 2))
    assert m.method == "input_map"
    assert [geo.labels[c] for c in m.column_of_patch.tolist()] == [(1, 1), (1, 0), (0, 1), (0, 0)]
    path = tmp_path / "g.graphml"
    G = geo.to_networkx()
    for v in G:
        G.nodes[v]["pos"] = " ".join(map(str, G.nodes[v]["pos"]))  # GraphML stores text
    nx.write_graphml(nx.relabel_nodes(G, str), path)
    again = read_geometry(path)
    assert again.input_map.tolist() == geo.input_map.tolist()
    model = ImageClassification(geo, ColumnformerConfig(channels=8, steps=1), TASK, (1, 2, 2), 3)
    assert model.encoder.input_map().method == "input_map"


@pytest.mark.parametrize("suffix", [".graphml", ".gml", ".csv"])
def test_trained_sheet_geometry_keeps_the_map_through_files(tmp_path, suffix):
    """load_model(...)'s geometry is the model's current sheet: written back to a file and
    read again, it keeps the explicit map (new columns receive no patch)."""
    patch = {(0, 0): 3, (0, 1): 2, (1, 0): 1, (1, 1): 0}
    geo = from_networkx(_graph_with_map(patch))
    model = ImageClassification(geo, ColumnformerConfig(channels=8, steps=1), TASK, (1, 2, 2), 3)
    sheet = model.columnformer.geometry
    assert torch.equal(sheet.input_map, geo.input_map)
    path = write_geometry(sheet, tmp_path / f"sheet{suffix}")
    coords = str(path.with_name(path.stem + "_nodes.csv")) if suffix == ".csv" else None
    again = read_geometry(path, coords=coords)
    assert again.input_map.tolist() == geo.input_map.tolist()
    rebuilt = ImageClassification(again, ColumnformerConfig(channels=8, steps=1), TASK,
                                  (1, 2, 2), 3)
    assert rebuilt.encoder.input_map().method == "input_map"
    edges = model.columnformer.edges
    edges.add_columns(torch.tensor([[5.0, 5.0]]), torch.tensor([0]))
    edges.edit(add=torch.tensor([[0], [4]]))  # the new column's input
    assert model.columnformer.geometry.input_map.tolist() == geo.input_map.tolist() + [-1]


def test_csv_coordinates_carry_input_map(tmp_path):
    (tmp_path / "nodes.csv").write_text("node,x,y,area,input_map\na,0,0,input,1\nb,1,0,input,0\n")
    (tmp_path / "edges.csv").write_text("source,target\na,b\nb,a\n")
    geo = read_geometry(tmp_path / "edges.csv", coords=str(tmp_path / "nodes.csv"))
    assert geo.input_map.tolist() == [1, 0]


@pytest.mark.parametrize("patch, match", [
    ({(0, 0): 0, (0, 1): 0, (1, 0): 1, (1, 1): 2}, r"exactly once \(missing e.g. \[3\]\)"),
    ({(0, 0): 0, (0, 1): 1, (1, 0): 2, (1, 1): 7}, r"exactly once"),
])
def test_bad_explicit_maps_are_refused(patch, match):
    geo = from_networkx(_graph_with_map(patch))
    with pytest.raises(ValueError, match=match):
        InputMap.fit(geo, "input", (2, 2))


@pytest.mark.parametrize("value", ["left", 1.5, -2, float("nan")])
def test_bad_input_map_values_are_refused(value):
    patch = {(0, 0): 0, (0, 1): 1, (1, 0): 2, (1, 1): value}
    with pytest.raises(ValueError, match=r"input_map .*expected the index \(>= 0\)"):
        from_networkx(_graph_with_map(patch))


def test_geometry_refuses_a_wrong_length_map():
    with pytest.raises(ValueError, match=r"one patch index >= 0 .* per column \(4\)"):
        from_coords(torch.rand(4, 2), knn(2), input_map=torch.tensor([0, 1]))


def test_loaded_model_keeps_its_trained_map():
    geo = grid(4, wiring=knn(4))
    model = ImageClassification(geo, ColumnformerConfig(channels=8, steps=2), TASK, (1, 4, 4), 3)
    state = model.state_dict()
    state["encoder.patch_of_slot"] = state["encoder.patch_of_slot"].flip(0)  # e.g. an older map
    fresh = ImageClassification(geo, ColumnformerConfig(channels=8, steps=2), TASK, (1, 4, 4), 3)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.encoder.input_map().patch_of_slot, torch.arange(16).flip(0))


def test_large_areas_bin_rows_exactly():
    geo = grid(72, wiring=knn(4))  # 5184 patches: above the assignment limit
    m = InputMap.fit(geo, "input", (72, 72))
    assert m.method == "rows" and torch.equal(m.column_of_patch, geo.area("input"))


def test_plot_labels_the_map(tmp_path):
    geo = from_coords(hexagonal(4, 4), knn(6), areas={"input": torch.arange(16)})
    ax = InputMap.fit(geo, "input", (4, 4)).plot(path=tmp_path / "m.png")
    assert "input map" in ax.get_title() and "stretch" in ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel()
    assert any(a.get_label() == "<colorbar>" for a in ax.figure.axes)
    assert (tmp_path / "m.png").stat().st_size > 0
