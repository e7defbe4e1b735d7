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
    with pytest.raises(ValueError, match="knn\\(k=20\\) needs 1 <= k <= N - 1 = 15"):
        grid(4, wiring=knn(k=20))


def test_knn_scales_without_dense_matrix():
    geo = grid(200, wiring=knn(k=8))  # 40k columns: an N x N matrix would be 6.4 GB
    assert geo.num_edges == 8 * 40_000
