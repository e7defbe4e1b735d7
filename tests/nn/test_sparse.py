import pytest
import torch
from torch_geometric.utils import softmax as pyg_softmax

from colgraph.geometry import grid, knn, radius
from colgraph.nn import EdgeCSR, edge_softmax, sddmm, spmm

# variable in-degree (3 .. 8) and a constant one (the dense-view fast paths)
WIRINGS = {"variable": radius(1.5), "constant": knn(4)}


@pytest.fixture(params=list(WIRINGS))
def sheet(request):
    geo = grid(5, wiring=WIRINGS[request.param])
    return geo, EdgeCSR(geo.edge_index, geo.num_columns)


def layout(geo, batch, heads):
    """Independent reference of the interleaved layout: per block value (in order), its
    source row, target row, edge and head, built with Python loops."""
    R = batch * heads
    src, dst = geo.edge_index.tolist()
    rows = []
    for t in range(geo.num_columns):
        inputs = [e for e in range(len(dst)) if dst[e] == t]
        for r in range(R):
            rows += [(src[e] * R + r, t * R + r, e, r % heads) for e in inputs]
    return [torch.tensor(c) for c in zip(*rows)]


def test_block_structure_matches_the_interleaved_layout(sheet):
    geo, csr = sheet
    b = csr.block(3, heads=2)
    src, dst, _, _ = layout(geo, 3, 2)
    dense = b.matrix(torch.arange(1.0, b.nnz + 1)).to_dense()
    ref = torch.zeros(b.size, b.size)
    ref[dst, src] = torch.arange(1.0, b.nnz + 1)
    assert torch.equal(dense, ref)
    assert torch.equal(b.matrix(torch.arange(1.0, b.nnz + 1), transpose=True).to_dense(), ref.t())
    assert (b.degree is None) == (geo.in_degree().unique().numel() > 1)


def test_sddmm_matches_gather_and_gradcheck(sheet):
    geo, csr = sheet
    b = csr.block(3)
    src, dst, _, _ = layout(geo, 3, 1)
    q = torch.randn(75, 4, dtype=torch.double, requires_grad=True)
    k = torch.randn(75, 4, dtype=torch.double, requires_grad=True)
    assert torch.allclose(sddmm(b, q, k), (q[dst] * k[src]).sum(-1))
    assert torch.autograd.gradcheck(lambda q, k: sddmm(b, q, k), (q, k))
    assert torch.allclose(sddmm(b, q, k, 0.25), 0.25 * sddmm(b, q, k))
    assert torch.autograd.gradcheck(lambda q, k: sddmm(b, q, k, 0.25), (q, k))


def test_spmm_matches_scatter_and_gradcheck(sheet):
    geo, csr = sheet
    b = csr.block(3)
    src, dst, _, _ = layout(geo, 3, 1)
    a = torch.rand(b.nnz, dtype=torch.double, requires_grad=True)
    v = torch.randn(75, 2, dtype=torch.double, requires_grad=True)
    ref = torch.zeros(75, 2, dtype=torch.double).index_add(0, dst, a[:, None] * v[src])
    assert torch.allclose(spmm(b, a, v), ref)
    assert torch.autograd.gradcheck(lambda a, v: spmm(b, a, v), (a, v))


def test_edge_softmax_matches_pyg_and_gradcheck(sheet):
    geo, csr = sheet
    b = csr.block(2, heads=2)
    _, dst, _, _ = layout(geo, 2, 2)
    logit = torch.randn(b.nnz, dtype=torch.double, requires_grad=True)
    ref = pyg_softmax(logit, dst, num_nodes=b.size)
    assert torch.allclose(edge_softmax(b, logit), ref)
    assert torch.autograd.gradcheck(lambda x: edge_softmax(b, x), (logit,))
    big = logit.detach() * 1e4  # no overflow: the row maximum is subtracted
    assert torch.isfinite(edge_softmax(b, big)).all()


def test_per_edge_broadcast_and_batch_mean(sheet):
    geo, csr = sheet
    batch, heads = 3, 2
    b = csr.block(batch, heads)
    _, _, edge, head = layout(geo, batch, heads)
    per_edge = torch.randn(geo.num_edges, heads, dtype=torch.double, requires_grad=True)
    values = torch.randn(b.nnz, dtype=torch.double, requires_grad=True)
    assert torch.allclose(b.add_per_edge(values, per_edge), values + per_edge[edge, head])
    ref = torch.zeros(geo.num_edges, heads, dtype=torch.double)
    ref.index_put_((edge, head), values / batch, accumulate=True)
    assert torch.allclose(b.batch_mean(values), ref)
    assert torch.autograd.gradcheck(lambda v, p: b.batch_mean(b.add_per_edge(v, p)),
                                    (values, per_edge))


def test_edge_csr_requires_canonical_order():
    geo = grid(3, wiring=knn(2))
    with pytest.raises(ValueError, match="sorted by target"):
        EdgeCSR(geo.edge_index.flip(1), geo.num_columns)


def test_block_cache_is_bounded_and_reuses_recent_blocks():
    geo = grid(4, wiring=knn(4))
    csr = EdgeCSR(geo.edge_index, geo.num_columns)
    first = csr.block(2)
    assert csr.block(2) is first and csr.block(2, heads=1) is first  # cached
    assert csr.block(1, heads=2) is not first  # same copies, other head layout
    for r in range(3, 10):
        b = csr.block(r)
        assert b.nnz == r * geo.num_edges and b.size == r * geo.num_columns
        csr.block(2)  # kept in use: never evicted
    assert len(csr._blocks) == EdgeCSR.cached_blocks
    assert csr.block(2) is first and csr.block(9) is b
