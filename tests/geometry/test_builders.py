import math

import pytest
import torch

from colgraph.geometry import full, grid, knn, radius, stack, torus


def assert_canonical(geo):
    key = geo.edge_index[1] * geo.num_columns + geo.edge_index[0]
    assert (key[1:] > key[:-1]).all(), "edges must be sorted by target, unique"


def test_grid_knn_counts_degrees_and_lengths():
    geo = grid(6, 5, wiring=knn(k=4))
    assert geo.num_columns == 30 and geo.num_edges == 120
    assert (geo.in_degree() == 4).all()
    assert_canonical(geo)
    src, dst = geo.edge_index
    expected = (geo.pos[src] - geo.pos[dst]).norm(dim=1)
    assert torch.allclose(geo.edge_length, expected)
    assert (geo.edge_index[0] != geo.edge_index[1]).all()  # no self-loops by default


def test_self_loops_option():
    geo = grid(4, wiring=knn(k=3, self_loops=True))
    assert (geo.in_degree() == 4).all()
    loops = geo.edge_index[0] == geo.edge_index[1]
    assert loops.sum() == 16 and (geo.edge_length[loops] == 0).all()
    assert_canonical(geo)


def test_torus_wraps_distances():
    flat, ring = grid(8, wiring=knn(k=4)), torus(8, wiring=knn(k=4))
    # on the torus every column has its 4 lattice neighbours at distance 1, even at borders
    assert torch.allclose(ring.edge_length, torch.ones(ring.num_edges))
    assert flat.edge_length.max() > 1.0
    corner_in = ring.edge_index[0][ring.edge_index[1] == 0].tolist()
    assert sorted(corner_in) == [1, 7, 8, 56]


def test_torus_length_is_wrapped_metric():
    geo = torus(10, wiring=radius(2.5))
    src, dst = geo.edge_index
    d = (geo.pos[src] - geo.pos[dst]).abs()
    d = torch.minimum(d, 10 - d)
    assert torch.allclose(geo.edge_length, d.norm(dim=1))
    assert geo.edge_length.max() <= 2.5


def test_radius_is_symmetric():
    geo = grid(5, wiring=radius(1.5))
    pairs = set(map(tuple, geo.edge_index.t().tolist()))
    assert all((t, s) in pairs for s, t in pairs)
    assert geo.in_degree().max() == 8 and geo.in_degree().min() == 3
    assert_canonical(geo)


def test_full_wiring():
    geo = grid(4, wiring=full())
    assert geo.num_edges == 16 * 15
    assert_canonical(geo)


def test_full_refuses_huge_sheets():
    with pytest.raises(ValueError, match="use knn|Use knn"):
        grid(70, wiring=full())


def test_stack_areas_and_positions():
    geo = stack([8, 6, 4], spacing=2.0, wiring=knn(k=16))
    assert geo.num_columns == 64 + 36 + 16
    assert torch.equal(geo.area("input"), geo.area("area0"))
    assert torch.equal(geo.area("output"), torch.arange(100, 116))
    z = geo.pos[:, 2]
    assert z[geo.area("area1")].unique().tolist() == [2.0]
    # every area covers the same square (retinotopic alignment)
    for name in ("area0", "area1", "area2"):
        xy = geo.pos[geo.area(name), :2]
        assert xy.min() == 0 and math.isclose(float(xy.max()), 7.0, rel_tol=1e-6)
    assert (geo.in_degree() == 16).all()
    assert_canonical(geo)


def test_builders_are_deterministic():
    a = stack([6, 3], wiring=knn(k=5))
    b = stack([6, 3], wiring=knn(k=5))
    assert torch.equal(a.edge_index, b.edge_index) and a.fingerprint() == b.fingerprint()


def test_knn_k_too_large():
    with pytest.raises(ValueError, match="knn\\(k=20\\) needs k <= N - 1 = 15"):
        grid(4, wiring=knn(k=20))


def test_knn_scales_without_dense_matrix():
    geo = grid(200, wiring=knn(k=8))  # 40k columns: an N x N matrix would be 6.4 GB
    assert geo.num_edges == 8 * 40_000


def test_sphere_great_circle_lengths():
    from colgraph.geometry import sphere

    geo = sphere(300, radius=2.0, wiring=knn(6))
    assert torch.allclose(geo.pos.norm(dim=1), torch.full((300,), 2.0), atol=1e-5)
    u = geo.pos / 2.0
    src, dst = geo.edge_index
    angle = torch.arccos((u[src] * u[dst]).sum(1).clamp(-1, 1))
    assert torch.allclose(geo.edge_length, 2.0 * angle, atol=1e-5)
    assert (geo.edge_length >= (geo.pos[src] - geo.pos[dst]).norm(dim=1) - 1e-5).all()
    z = geo.pos[:, 2]
    assert z[geo.area("input")].max() < z[geo.area("output")].min()


def test_ring_wraps_and_line_does_not():
    from colgraph.geometry import line, ring

    r, l_ = ring(10, wiring=knn(2)), line(10, wiring=knn(2))
    assert (r.edge_length == 1).all() and (r.in_degree() == 2).all()
    assert sorted(r.edge_index[0][r.edge_index[1] == 0].tolist()) == [1, 9]
    assert l_.edge_index[0][l_.edge_index[1] == 0].tolist() == [1, 2]


@pytest.mark.parametrize("shape", ["box", "disc"])
def test_random_sheet(shape):
    from colgraph.geometry import random_sheet

    a = random_sheet(200, shape=shape, seed=3, wiring=knn(5))
    b = random_sheet(200, shape=shape, seed=3, wiring=knn(5))
    assert torch.equal(a.pos, b.pos) and torch.equal(a.edge_index, b.edge_index)
    assert not torch.equal(random_sheet(200, shape=shape, seed=4).pos, a.pos)
    size = 200 ** 0.5
    assert a.pos.min() >= 0 and a.pos.max() <= size
    if shape == "disc":
        assert ((a.pos - size / 2).norm(dim=1) <= size / 2 + 1e-4).all()
    x = a.pos[:, 0]
    assert x[a.area("input")].max() <= x[a.area("output")].min()


@pytest.mark.parametrize("inter", ["feedforward", "bidirectional", "all"])
def test_stack_inter_area_wiring(inter):
    geo = stack([6, 4, 3], wiring=knn(4), inter=inter, inter_k=3)
    area = torch.zeros(geo.num_columns, dtype=torch.long)
    for i in range(3):
        area[geo.area(f"area{i}")] = i
    s, t = area[geo.edge_index[0]], area[geo.edge_index[1]]
    assert ((t - s).abs() <= 1).all()  # only neighbouring areas connect
    up, down = int((t > s).sum()), int((t < s).sum())
    if inter == "feedforward":
        assert down == 0 and up == 3 * (16 + 9)
    elif inter == "bidirectional":
        assert down == up == 3 * (16 + 9)
    else:
        assert down == up == 36 * 16 + 16 * 9
    assert_canonical(geo)


def test_stack_unknown_inter():
    with pytest.raises(ValueError, match="Unknown inter-area wiring 'sideways'. Choices: knn, "):
        stack([4, 2], inter="sideways")


def test_builder_argument_errors():
    from colgraph.geometry import line, random_sheet, ring

    with pytest.raises(ValueError, match="ring needs n >= 2 \\(got"):
        ring(1)
    with pytest.raises(ValueError, match="line needs n >= 2"):
        line(0)
    with pytest.raises(ValueError, match="random_sheet needs dim >= 1"):
        random_sheet(10, dim=0)
    with pytest.raises(ValueError, match="inter_k >= 1"):
        stack([4, 2], inter="feedforward", inter_k=0)
