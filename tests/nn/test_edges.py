"""SheetEdges: the one owner of the current edges, and the one edit function."""
import copy
import gc

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from colgraph import Columnformer
from colgraph.geometry import Geometry, grid, knn, sphere, stack, torus
from colgraph.nn import SheetEdges

from conftest import fit

GEO = stack([4, 3, 2], spacing=2.0, wiring=knn(k=6))


def _keys(index, n):
    return (index[1] * n + index[0]).tolist()


def test_lengths_come_from_the_metric():
    for geo in (grid(5, wiring=knn(4)), torus(6, wiring=knn(4)), sphere(50, wiring=knn(5))):
        edges = SheetEdges(geo)
        assert torch.allclose(edges.measure(*geo.edge_index), geo.edge_length, atol=1e-5)
    # torus: the far side of the box is one step away
    edges = SheetEdges(torus(6, wiring=knn(4)))
    assert float(edges.measure(torch.tensor([5]), torch.tensor([0]))) == pytest.approx(1.0)


def test_model_reads_edges_from_the_owner():
    model = Columnformer(GEO, channels=8, steps=3, tied_depth=False)
    assert model.edge_index is model.edges.index and model.edge_length is model.edges.length
    assert all(s.attn.edges is model.edges for s in model.blocks)
    assert len(model.edges.per_edge()) == 3  # one edge_bias per sheet
    assert "edges.index" in model.state_dict() and "edges.pos" in model.state_dict()
    assert "edges.length" not in model.state_dict()  # derived from positions, never stored
    assert model.geometry.fingerprint() == GEO.fingerprint()


def test_lengths_are_derived_from_positions():
    """Every builder's lengths are its metric's, bit for bit; a mesh's surface paths are
    distances between sites that stay with the sites; a checkpoint that stored lengths
    loads."""
    from colgraph.geometry import SiteLengths, from_mesh

    for geo in (GEO, torus(6, wiring=knn(4)), stack([4, 3], wiring=knn(4)),
                sphere(40, wiring=knn(4))):
        assert SiteLengths.of(geo) is None
        assert torch.equal(SheetEdges(geo).length, geo.edge_length)
    n = 5
    xs, ys = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="xy")
    verts = torch.stack([xs.flatten(), ys.flatten(), 0.3 * torch.sin(xs.flatten())], 1)
    faces = [[i * n + j, i * n + j + 1, i * n + j + n] for i in range(n - 1) for j in range(n - 1)]
    faces += [[i * n + j + 1, i * n + j + n + 1, i * n + j + n]
              for i in range(n - 1) for j in range(n - 1)]
    mesh = from_mesh(verts.float(), torch.tensor(faces), k_ring=2, geodesic=True)
    edges = SheetEdges(mesh)
    assert edges.given_lengths is not None and len(edges.given_lengths) > 0
    assert torch.equal(edges.length, mesh.edge_length)
    # swap two columns' positions: the edge between their sites keeps the surface length
    s, t = mesh.edge_index[:, int(torch.nonzero(
        mesh.edge_length != mesh.measure(*mesh.edge_index))[0, 0])].tolist()
    state = copy.deepcopy(edges.state_dict())
    edges.pos[[s, t]] = edges.pos[[t, s]].clone()
    edges._invalidate()
    back = edges.measure(torch.tensor([t]), torch.tensor([s]))  # t now sits at s's site
    assert float(back) == float(mesh.edge_length[(mesh.edge_index[0] == s)
                                                 & (mesh.edge_index[1] == t)])
    # an old checkpoint with a stored length loads (the stored one is ignored)
    edges.load_state_dict({**state, "length": torch.zeros(edges.num_edges)})
    assert torch.equal(edges.length, mesh.edge_length)


def _model_and_optimizer(tied=True):
    torch.manual_seed(0)
    model = Columnformer(GEO, channels=8, steps=3, tied_depth=tied)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    fit(model, opt, (2, 16, 8), steps=2)
    return model, opt


def _random_edit(edges, gen, drop, grow):
    n, E = edges.num_columns, edges.num_edges
    keep = torch.rand(E, generator=gen) >= drop
    # never strand a column: keep each column's first edge
    first = torch.cat([torch.zeros(1, dtype=torch.long), edges.in_degree().cumsum(0)[:-1]])
    keep[first] = True
    existing = set(_keys(edges.index[:, keep], n))
    add, seen = [], set()
    for _ in range(grow):
        s, t = torch.randint(n, (2,), generator=gen).tolist()
        if s != t and t * n + s not in existing and t * n + s not in seen:
            seen.add(t * n + s)
            add.append((s, t))
    add = torch.tensor(add, dtype=torch.long).t().reshape(2, -1)
    return keep, add


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), tied=st.booleans(), rounds=st.integers(1, 4),
       drop=st.floats(0.0, 0.6), grow=st.integers(0, 40))
def test_edit_keeps_every_per_edge_tensor_in_lockstep(seed, tied, rounds, drop, grow):
    """Kept edges keep bias, length, grad and Adam moments bit for bit; new ones start at
    zero moments and the length prior; canonical order and uniqueness always hold."""
    model, opt = _model_and_optimizer(tied)
    edges, n = model.edges, model.num_columns
    gen = torch.Generator().manual_seed(seed)
    for _ in range(rounds):
        before = {k: int(v) for v, k in enumerate(_keys(edges.index, n))}
        old_len = edges.length.clone()
        old = [(s.attn.edge_bias.detach().clone(), s.attn.edge_bias.grad.clone(),
                {k: v.clone() for k, v in opt.state[s.attn.edge_bias].items()})
               for s in model.blocks]
        keep, add = _random_edit(edges, gen, drop, grow)
        edit = edges.edit(keep, add, optimizer=opt)
        edges.check()
        keys = _keys(edges.index, n)
        assert keys == sorted(keys) and len(set(keys)) == len(keys)  # canonical, unique
        assert edit.num_removed == int((~keep).sum()) and edit.num_added == add.size(1)
        assert edges.num_edges == int(keep.sum()) + add.size(1)
        old_pos = torch.tensor([before[k] for k in _keys(edit.removed, n)], dtype=torch.long)
        assert (edit.kept_position[old_pos] == -1).all()
        src = keep.nonzero().flatten()
        dst = edit.kept_position[src]
        assert torch.equal(edges.length[dst], old_len[src])
        assert torch.allclose(edges.length[edit.added_position], edges.measure(*add))
        for (bias, grad, state), sheet in zip(old, model.blocks):
            p = sheet.attn.edge_bias
            assert any(p is q for g in opt.param_groups for q in g["params"])
            assert torch.equal(p.detach()[dst], bias[src])
            assert torch.equal(p.grad[dst], grad[src])
            assert (p.grad[edit.added_position] == 0).all()
            for k in ("exp_avg", "exp_avg_sq"):
                assert torch.equal(opt.state[p][k][dst], state[k][src])
                assert (opt.state[p][k][edit.added_position] == 0).all()
            assert torch.equal(opt.state[p]["step"], state["step"])
            prior = model.blocks[0].attn.bias_prior(edges, add, edges.length[edit.added_position])
            assert torch.allclose(p.detach()[edit.added_position, 0], prior)
    # the model still runs, trains and agrees with the dense reference on the new wiring
    out = model(torch.randn(2, 16, 8))
    assert all(a.shape[0] == edges.num_edges for a in out.attention)
    out.output.sum().backward()
    opt.step()


def test_edited_model_matches_the_dense_reference():
    model, opt = _model_and_optimizer()
    keep, add = _random_edit(model.edges, torch.Generator().manual_seed(3), 0.3, 30)
    model.edges.edit(keep, add, optimizer=opt)
    dense = Columnformer(GEO, channels=8, steps=3, backend="dense")
    dense.load_state_dict(model.state_dict())
    x = torch.randn(2, 16, 8)
    assert torch.allclose(model(x).state, dense(x).state, atol=1e-5)


def test_checkpoint_round_trip_restores_the_edited_wiring(tmp_path):
    model, opt = _model_and_optimizer(tied=False)
    keep, add = _random_edit(model.edges, torch.Generator().manual_seed(1), 0.4, 25)
    model.edges.edit(keep, add, optimizer=opt)
    torch.save({"model": model.state_dict(), "optim": opt.state_dict()}, tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    fresh = Columnformer(GEO, channels=8, steps=3, tied_depth=False)  # geometry's edges
    assert fresh.edges.num_edges != model.edges.num_edges
    fresh.load_state_dict(state["model"])
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2)  # after loading the model
    fresh_opt.load_state_dict(state["optim"])
    fresh.edges.check()
    assert torch.equal(fresh.edge_index, model.edge_index)
    assert fresh.geometry.num_edges == model.edges.num_edges
    x = torch.randn(2, 16, 8)
    assert torch.equal(fresh(x).state, model(x).state)
    for p, q in zip(fresh.parameters(), model.parameters()):
        for k, v in opt.state[q].items():
            assert torch.equal(fresh_opt.state[p][k], v)


def test_bad_edits_are_refused_and_change_nothing():
    model, opt = _model_and_optimizer()
    edges = model.edges
    E, index = edges.num_edges, edges.index.clone()
    bias = model.blocks[0].attn.edge_bias.detach().clone()
    cases = [
        (dict(keep=torch.ones(E - 1, dtype=torch.bool)), "bool mask of shape"),
        (dict(keep=torch.ones(E)), "bool mask of shape"),
        (dict(add=torch.tensor([[0.5], [1.0]])), "integer tensor of shape"),
        (dict(add=torch.tensor([[0, 1, 2]])), r"shape \[2, A\]"),
        (dict(add=torch.tensor([[0], [999]])), "between columns in"),
        (dict(add=torch.tensor([[-1], [0]])), "between columns in"),
        (dict(add=index[:, :1]), "already exists"),
        (dict(add=torch.tensor([[5, 5], [9, 9]])), "more than once"),
        (dict(keep=edges.index[1] != 3), "fewer than 1 incoming"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            edges.edit(optimizer=opt, **kwargs)
        assert torch.equal(edges.index, index)
        assert torch.equal(model.blocks[0].attn.edge_bias.detach(), bias)


def test_hand_edited_tensors_are_detected():
    model = Columnformer(GEO, channels=8, steps=3)
    model.blocks[0].attn.edge_bias.data = model.blocks[0].attn.edge_bias.data[:-1]
    with pytest.raises(RuntimeError, match="out of step"):
        model.edges.check()
    with pytest.raises(RuntimeError, match="model.edges.edit"):
        model(torch.randn(1, 16, 8))
    model = Columnformer(GEO, channels=8, steps=3)
    model.edges.index = model.edges.index.flip(1)
    with pytest.raises(RuntimeError, match="canonical order"):
        model.edges.check()


def test_new_rows_replace_init_for_one_edit():
    model, opt = _model_and_optimizer(tied=False)
    edges = model.edges
    add = torch.tensor([[15, 14], [0, 1]])
    bias = {s.attn.edge_bias: torch.full((2, 1), float(i)) for i, s in enumerate(model.blocks)}
    edit = edges.edit(add=add, optimizer=opt, new_rows=bias)
    for i, s in enumerate(model.blocks):
        assert (s.attn.edge_bias.detach()[edit.added_position] == i).all()
        assert (opt.state[s.attn.edge_bias]["exp_avg"][edit.added_position] == 0).all()
    # the next edit is back to each tensor's init (the length prior)
    edit = edges.edit(add=torch.tensor([[13], [2]]))
    prior = model.blocks[0].attn.bias_prior(edges, edit.added, edges.length[edit.added_position])
    assert torch.allclose(model.blocks[0].attn.edge_bias.detach()[edit.added_position, 0], prior)


def test_bad_new_rows_are_refused_and_change_nothing():
    model, opt = _model_and_optimizer()
    edges, index = model.edges, model.edges.index.clone()
    p = model.blocks[0].attn.edge_bias
    add = torch.tensor([[15], [0]])
    with pytest.raises(ValueError, match="not registered with these edges .*ColumnAttention"):
        edges.edit(add=add, new_rows={torch.zeros(1, 1): torch.zeros(1, 1)})
    with pytest.raises(ValueError, match=r"of shape \[1, 1\] \(one row per added edge\), "
                                         r"got \[2, 1\]"):
        edges.edit(add=add, optimizer=opt, new_rows={p: torch.zeros(2, 1)})
    assert torch.equal(edges.index, index) and model.blocks[0].attn.edge_bias is p


def test_registry_forgets_owners_that_are_gone():
    """Registering never keeps an object alive: a dropped owner leaves the registry, and a
    deep copy's registry holds the copy's layers, not the original's."""
    model = Columnformer(GEO, channels=8, steps=3, tied_depth=False)
    edges = model.edges

    class Holder:
        def __init__(self):
            self.stat = torch.zeros(edges.num_edges)

    holder = Holder()
    edges.register(holder, "stat")
    assert len(edges.per_edge()) == 4
    del holder
    gc.collect()
    assert len(edges.per_edge()) == 3  # the three blocks' edge_bias
    edges.edit(add=torch.tensor([[15], [0]]))
    edges.check()
    twin = copy.deepcopy(model)
    twin.edges.edit(add=torch.tensor([[14], [0]]))
    twin.edges.check()
    model.edges.check()
    assert twin.edges.num_edges == model.edges.num_edges + 1
    assert all(a is b for a, b in zip(twin.edges.per_edge().values(),
                                      (s.attn.edge_bias for s in twin.blocks)))


def test_register_refuses_a_tensor_of_the_wrong_size():
    edges = SheetEdges(GEO)

    class Holder:
        stat = torch.zeros(3)

    with pytest.raises(ValueError, match="one row per edge"):
        edges.register(Holder(), "stat")


def test_geometry_view_is_current_and_valid():
    model = Columnformer(GEO, channels=8, steps=3)
    keep = torch.ones(model.edges.num_edges, dtype=torch.bool)
    keep[::7] = False
    keep[torch.cat([torch.zeros(1, dtype=torch.long),
                    model.edges.in_degree().cumsum(0)[:-1]])] = True
    model.edges.edit(keep)
    geo = model.geometry
    assert isinstance(geo, Geometry) and geo.num_edges == int(keep.sum())
    assert geo.areas.keys() == GEO.areas.keys()


def test_backward_after_a_resizing_edit_while_the_old_graph_is_alive():
    """A training loop keeps the last step's outputs alive during the next forward; an edit
    that changes E must not leave autograd expecting the old shape."""
    model, opt = _model_and_optimizer()
    out = model(torch.randn(2, 16, 8))
    out.output.sum().backward()
    keep = torch.ones(model.edges.num_edges, dtype=torch.bool)
    keep[torch.arange(model.edges.num_edges) % 5 == 1] = False
    keep[torch.cat([torch.zeros(1, dtype=torch.long),
                    model.edges.in_degree().cumsum(0)[:-1]])] = True
    model.edges.edit(keep, optimizer=opt)  # `out` (and its graph) still alive
    new = model(torch.randn(2, 16, 8))
    (new.output.sum() + sum(a.sum() for a in new.attention)).backward()
    opt.step()
    assert model.blocks[0].attn.edge_bias.grad.shape[0] == model.edges.num_edges
    assert out is not None
