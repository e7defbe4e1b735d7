import pytest
import torch

from colgraph.geometry import grid, knn, radius
from colgraph.nn import EdgeCSR, sddmm, spmm


@pytest.fixture
def block():
    geo = grid(5, wiring=radius(1.5))  # variable in-degree (3 .. 8)
    return geo, EdgeCSR(geo.edge_index, geo.num_columns).block(3)


def replicated(geo, r):
    n = geo.num_columns
    src = torch.cat([geo.edge_index[0] + i * n for i in range(r)])
    dst = torch.cat([geo.edge_index[1] + i * n for i in range(r)])
    return src, dst


def test_sddmm_matches_gather_and_gradcheck(block):
    geo, b = block
    src, dst = replicated(geo, 3)
    q = torch.randn(75, 4, dtype=torch.double, requires_grad=True)
    k = torch.randn(75, 4, dtype=torch.double, requires_grad=True)
    assert torch.allclose(sddmm(b, q, k), (q[dst] * k[src]).sum(-1))
    assert torch.autograd.gradcheck(lambda q, k: sddmm(b, q, k), (q, k))


def test_spmm_matches_scatter_and_gradcheck(block):
    geo, b = block
    src, dst = replicated(geo, 3)
    a = torch.rand(3 * geo.num_edges, dtype=torch.double, requires_grad=True)
    v = torch.randn(75, 2, dtype=torch.double, requires_grad=True)
    ref = torch.zeros(75, 2, dtype=torch.double).index_add(0, dst, a[:, None] * v[src])
    assert torch.allclose(spmm(b, a, v), ref)
    assert torch.autograd.gradcheck(lambda a, v: spmm(b, a, v), (a, v))


def test_edge_csr_requires_canonical_order():
    geo = grid(3, wiring=knn(2))
    with pytest.raises(ValueError, match="sorted by target"):
        EdgeCSR(geo.edge_index.flip(1), geo.num_columns)


def test_block_cache_is_bounded_and_reuses_recent_blocks():
    geo = grid(4, wiring=knn(4))
    csr = EdgeCSR(geo.edge_index, geo.num_columns)
    first = csr.block(2)
    assert csr.block(2) is first  # cached
    for r in range(3, 10):
        b = csr.block(r)
        assert b.col.numel() == r * geo.num_edges and b.size == r * geo.num_columns
        csr.block(2)  # kept in use: never evicted
    assert len(csr._blocks) == EdgeCSR.cached_blocks
    assert csr.block(2) is first and csr.block(9) is b
