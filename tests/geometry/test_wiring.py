"""Property-based tests of the wiring rules over random coordinates."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from colgraph.geometry import (exponential, from_coords, full, grid, knn, radius, torus,
                               uniform, union)


@st.composite
def coords(draw, min_n=10, max_n=80):
    n = draw(st.integers(min_n, max_n))
    dim = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    pos = np.random.default_rng(seed).random((n, dim)) * 10
    return torch.from_numpy(pos).float()


def cdist(pos):
    return torch.cdist(pos.double(), pos.double(), compute_mode="donot_use_mm_for_euclid_dist")


def canonical(geo):
    key = geo.edge_index[1] * geo.num_columns + geo.edge_index[0]
    return bool((key[1:] > key[:-1]).all())


def euclidean(geo):
    src, dst = geo.edge_index
    return (geo.pos[src] - geo.pos[dst]).norm(dim=1)


@settings(max_examples=40, deadline=None)
@given(coords(), st.integers(1, 8))
def test_knn_properties(pos, k):
    geo = from_coords(pos, knn(k))
    assert canonical(geo)
    assert (geo.in_degree() == k).all()
    assert (geo.edge_length > 0).all()
    assert torch.allclose(geo.edge_length, euclidean(geo), atol=1e-5)
    # they are the k nearest: no non-neighbour is closer than the farthest chosen one
    d = cdist(pos) + torch.eye(len(pos)) * 1e9
    kth = d.sort(dim=1).values[:, k - 1]
    farthest = torch.zeros(len(pos), dtype=torch.double).scatter_reduce(
        0, geo.edge_index[1], geo.edge_length.double(), "amax")
    assert torch.allclose(farthest, kth, atol=1e-4)
    assert torch.equal(from_coords(pos, knn(k)).edge_index, geo.edge_index)  # deterministic


@settings(max_examples=40, deadline=None)
@given(coords(), st.floats(0.5, 4.0))
def test_radius_properties(pos, r):
    pos = pos[cdist(pos).sort(1).values[:, 1] <= r]  # keep columns with a neighbour
    if len(pos) < 2:
        return
    geo = from_coords(pos, radius(r))
    assert canonical(geo) and (geo.edge_length <= r + 1e-5).all()
    assert torch.allclose(geo.edge_length, euclidean(geo), atol=1e-5)
    within = ((cdist(pos) <= r).sum() - len(pos))
    assert abs(geo.num_edges - int(within)) <= 2  # float boundary cases only


@settings(max_examples=25, deadline=None)
@given(coords(min_n=30), st.integers(1, 4), st.floats(0.5, 5.0), st.integers(0, 100))
def test_exponential_properties(pos, m, lam, seed):
    try:
        geo = from_coords(pos, exponential(m=m, lam=lam, seed=seed))
    except ValueError as err:  # an isolated column whose every draw snapped back to itself
        assert "have no incoming edges" in str(err)
        return
    assert canonical(geo)
    assert geo.in_degree().max() <= m and (geo.edge_index[0] != geo.edge_index[1]).all()
    assert torch.allclose(geo.edge_length, euclidean(geo), atol=1e-5)
    again = from_coords(pos, exponential(m=m, lam=lam, seed=seed))
    assert torch.equal(again.edge_index, geo.edge_index)


def test_exponential_follows_distance_rule():
    """On a large uniform sheet, edge lengths follow P(l) ~ l * exp(-l / lam) (2D)."""
    lam = 3.0
    geo = grid(120, wiring=exponential(m=4, lam=lam, seed=1))
    assert (geo.in_degree() == 4).all()
    length = geo.edge_length.double()
    inner = (geo.pos[geo.edge_index[1]] - 60).abs().max(1).values < 40  # away from borders
    # 2D: radius ~ Gamma(2, lam) -> mean 2 lam (snapping to the lattice adds a little)
    assert abs(float(length[inner].mean()) - 2 * lam) < 0.15 * 2 * lam
    longer = grid(120, wiring=exponential(m=4, lam=2 * lam, seed=1)).edge_length.mean()
    assert longer > 1.7 * length.mean()
    other_seed = grid(120, wiring=exponential(m=4, lam=lam, seed=2))
    assert not torch.equal(other_seed.edge_index, geo.edge_index)


def test_exponential_on_torus_wraps():
    geo = torus(30, wiring=exponential(m=3, lam=4.0))
    assert geo.edge_length.max() <= 15 * 2**0.5 + 1e-4  # never longer than half the box


def test_union_local_plus_long_range():
    geo = grid(20, wiring=union(knn(8), exponential(m=4, lam=5.0)))
    assert (geo.in_degree() == 12).all()  # the random rule avoids the knn edges
    assert canonical(geo)


def test_full_has_every_pair():
    geo = grid(5, wiring=full(self_loops=True))
    assert geo.num_edges == 25 * 25 and canonical(geo)


def test_exponential_errors():
    with pytest.raises(ValueError, match="needs lam > 0: set geometry.wiring.lam"):
        grid(5, wiring=exponential(m=2, lam=0.0))
    with pytest.raises(ValueError, match="needs m >= 1 .*Raise geometry.wiring.long_range"):
        grid(5, wiring=exponential(m=0))
    with pytest.raises(ValueError, match=r"needs m <= N - 1 = 3 .*Lower geometry.wiring.long_range"):
        grid(2, wiring=exponential(m=4))


@settings(max_examples=25, deadline=None)
@given(coords(min_n=10), st.integers(1, 6), st.integers(0, 100))
def test_uniform_properties(pos, k, seed):
    k = min(k, pos.size(0) - 1)
    geo = from_coords(pos, uniform(k=k, seed=seed))
    assert canonical(geo) and (geo.in_degree() == k).all()
    assert (geo.edge_index[0] != geo.edge_index[1]).all()
    assert torch.equal(from_coords(pos, uniform(k=k, seed=seed)).edge_index, geo.edge_index)


def test_uniform_has_no_spatial_prior():
    geo = grid(30, wiring=uniform(k=4, seed=0))
    local = grid(30, wiring=knn(4))
    assert geo.edge_length.mean() > 5 * local.edge_length.mean()
    with pytest.raises(ValueError, match=r"uniform\(k=0\) needs k >= 1"):
        grid(4, wiring=uniform(k=0))
