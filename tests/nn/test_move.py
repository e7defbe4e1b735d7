"""SheetEdges.move: columns change place, never what they compute."""
import pytest
import torch

from colgraph import Columnformer
from colgraph.geometry import from_mesh, grid, knn, torus
from colgraph.nn import SheetEdges
from colgraph.objectives import wiring_length

GEO = grid(5, wiring=knn(k=4))


def _scramble(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def test_a_move_changes_lengths_never_the_computation():
    torch.manual_seed(0)
    model = Columnformer(GEO, channels=8, steps=3, input_area="input", output_area="output")
    edges = model.edges
    x = torch.randn(2, model.input_index.numel(), 8)
    model.eval()
    before = model(x).state.clone()
    index, csr, bias = edges.index.clone(), edges.csr(), model.blocks[0].attn.edge_bias.clone()
    length, version = edges.length.clone(), edges.positions_version
    to = _scramble(GEO.num_columns)
    m = edges.move(to)
    assert torch.equal(edges.pos, GEO.pos[to])
    assert torch.equal(edges.index, index) and edges.csr() is csr  # ids unchanged
    assert torch.equal(model.blocks[0].attn.edge_bias, bias)
    assert edges.positions_version == version + 1
    assert torch.allclose(edges.length, (edges.pos[index[1]] - edges.pos[index[0]]).norm(dim=1))
    assert not torch.allclose(edges.length, length)  # scrambled: longer wires
    assert m.num_moved == int((to != torch.arange(GEO.num_columns)).sum())
    assert torch.allclose(m.displacement, (GEO.pos[to] - GEO.pos)[m.moved].norm(dim=1))
    assert torch.equal(model(x).state, before)
    # moving back restores every length bit for bit
    back = torch.empty_like(to)
    back[to] = torch.arange(to.numel())
    edges.move(back)
    assert torch.equal(edges.pos, GEO.pos) and torch.equal(edges.length, length)


def test_the_wiring_length_follows_the_positions():
    model = Columnformer(GEO, channels=8, steps=2, input_area="input", output_area="output")
    edges = model.edges
    att = [torch.rand(edges.num_edges, 1)]
    cost = float(wiring_length(att, edges.index, edges.length))
    edges.move(_scramble(GEO.num_columns))
    assert float(wiring_length(att, edges.index, edges.length)) > cost


def test_continuous_positions_and_the_torus_metric():
    edges = SheetEdges(torus(4, wiring=knn(k=4)))
    new = edges.pos.clone()
    new[0] = torch.tensor([3.5, 0.0])  # half a step across the wrap from column 0's place
    m = edges.move(pos=new)
    assert m.moved.tolist() == [0] and float(m.displacement) == pytest.approx(0.5)


def _mesh():
    n = 4
    xs, ys = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="xy")
    verts = torch.stack([xs.flatten(), ys.flatten(), 0.5 * torch.sin(xs.flatten())], 1).float()
    faces = [[i * n + j, i * n + j + 1, i * n + j + n] for i in range(n - 1) for j in range(n - 1)]
    faces += [[i * n + j + 1, i * n + j + n + 1, i * n + j + n]
              for i in range(n - 1) for j in range(n - 1)]
    return from_mesh(verts, torch.tensor(faces), k_ring=2, geodesic=True)


def test_a_mesh_keeps_its_surface_lengths_between_sites():
    mesh = _mesh()
    edges = SheetEdges(mesh)
    to = _scramble(mesh.num_columns, 1)
    edges.move(to)
    # the edge a -> b now spans the sites of to[a] -> to[b]: the surface path there if the
    # mesh joined those sites, else the straight chord
    table = {(s, t): float(ln) for (s, t), ln in zip(mesh.edge_index.t().tolist(),
                                                     mesh.edge_length)}
    for (a, b), ln in zip(edges.index.t().tolist(), edges.length.tolist()):
        site = (int(to[a]), int(to[b]))
        want = table.get(site, float((mesh.pos[site[0]] - mesh.pos[site[1]]).norm()))
        assert ln == pytest.approx(want, abs=1e-6)
    with pytest.raises(ValueError, match="only move between sites"):
        edges.move(pos=edges.pos + 0.25)


@pytest.mark.parametrize("to, pos, match", [
    (None, None, "exactly one"),
    (torch.zeros(25, dtype=torch.long), None, "permutation"),
    (torch.arange(24), None, r"shape \[25\]"),
    (torch.arange(25).float(), None, "integer"),
    (torch.arange(25) - 1, None, "permutation"),
    (None, torch.zeros(25, 3), r"\[25, 2\]"),
    (None, torch.full((25, 2), float("nan")), "NaN"),
    (None, torch.zeros(25, 2), "distinct"),
])
def test_bad_moves_are_refused_and_change_nothing(to, pos, match):
    edges = SheetEdges(GEO)
    before = edges.pos.clone()
    with pytest.raises(ValueError, match=match):
        edges.move(to, pos=pos)
    assert torch.equal(edges.pos, before) and edges.positions_version == 0
