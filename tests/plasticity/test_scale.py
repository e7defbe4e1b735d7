import pytest
import torch

from colgraph import Columnformer
from colgraph.geometry import grid, knn, stack
from colgraph.plasticity import Plasticity, PlasticityConfig, add_columns, refine_grid
from colgraph.checkpoint import load_checkpoint
from colgraph.restore import load_model
from colgraph.training import train

from conftest import TINY, compose

GEO = stack([4, 3, 2], spacing=2.0, wiring=knn(k=6))


def _trained(tied=True):
    torch.manual_seed(0)
    model = Columnformer(GEO, channels=8, steps=3, tied_depth=tied)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x, y = torch.randn(8, 16, 8), torch.randn(8, 4, 8)
    for _ in range(3):
        loss = (model(x).output - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, opt, x


def test_refine_grid_makes_a_denser_lattice():
    model = Columnformer(grid(3, wiring=knn(4)), channels=8, steps=4)
    new = refine_grid(model, "sheet")
    assert new.shape == (16, 2)
    assert torch.equal(torch.unique(new[:, 0]), torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0]))
    area1 = refine_grid(Columnformer(GEO, channels=8, steps=3), "area1")
    assert area1.shape == (25 - 9, 3) and (area1[:, 2] == 2.0).all()  # stays in its plane
    with pytest.raises(ValueError, match="factor must be an integer >= 2"):
        refine_grid(model, "sheet", factor=1)


@pytest.mark.parametrize("tied", [True, False])
def test_new_columns_clone_their_parents_and_training_continues(tied):
    model, opt, x = _trained(tied)
    N, E = model.num_columns, model.edges.num_edges
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    moments = {n: opt.state[p]["exp_avg"].clone() for n, p in model.named_parameters()}
    out_old = model(x)  # keep a live graph across the growth, as a training loop does
    pos = refine_grid(model, "area1")
    stats = add_columns(model, pos, optimizer=opt)
    M = pos.size(0)
    assert stats["added_columns"] == M and model.num_columns == N + M
    assert stats["added_edges"] > 0 and model.edges.num_edges == E + stats["added_edges"]
    model.edges.check()
    # every per-column tensor grew; old rows unchanged; new rows = the nearest column's
    # the parent of each new column: the old column whose embedding it copied; it is one
    # of the nearest (refined lattice points can be equidistant from several)
    embed = model.column_embed.detach()
    parent = torch.cdist(embed[N:], before["column_embed"]).argmin(1)
    dist = torch.cdist(pos, GEO.pos)
    assert torch.allclose(dist.gather(1, parent[:, None]).squeeze(1), dist.min(1).values)
    for name, p in model.named_parameters():
        if p.size(0) == N + M and name in before and before[name].size(0) == N:
            assert torch.equal(p.detach()[:N], before[name]), name
            assert torch.equal(p.detach()[N:], before[name][parent]), name
            assert torch.equal(opt.state[p]["exp_avg"][N:], moments[name][parent]), name
    for module in model.modules():
        if hasattr(module, "columns"):
            assert module.columns == N + M
    # new columns joined area1 (their parents' area), not the input area
    area1 = model.edges.area("area1")
    assert set(range(N, N + M)) <= set(area1.tolist())
    assert model.input_index.numel() == 16
    # training goes on with the optimizer the function was given
    y = torch.randn(8, 4, 8)
    losses = []
    for _ in range(5):
        loss = (model(x).output - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert out_old is not None
    assert model.geometry.num_columns == N + M


def test_grown_sheet_survives_a_checkpoint_round_trip(tmp_path):
    model, opt, x = _trained()
    add_columns(model, refine_grid(model, "area2"), optimizer=opt)
    plasticity = Plasticity(model, PlasticityConfig.preset("set", every=1), 10, opt)
    plasticity.update(step=1)  # and edit the edges of the grown sheet
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    fresh = Columnformer(GEO, channels=8, steps=3)
    fresh.load_state_dict(state["model"])
    fresh.edges.check()
    torch.optim.AdamW(fresh.parameters()).load_state_dict(state["opt"])
    assert fresh.num_columns == model.num_columns
    assert torch.equal(fresh.output_index, model.output_index)
    assert torch.equal(fresh(x).state, model(x).state)


def test_output_area_can_grow_and_readout_follows():
    model, opt, x = _trained()
    n_out = model.output_index.numel()
    add_columns(model, refine_grid(model, "output"), optimizer=opt)
    assert model.output_index.numel() > n_out
    assert model(x).output.shape == (8, model.output_index.numel(), 8)


def test_bad_new_columns_are_refused_and_change_nothing():
    model, opt, _ = _trained()
    N, E = model.num_columns, model.edges.num_edges
    cases = [(GEO.pos[:1], "positions of their own"),
             (torch.tensor([[float("nan"), 0.0, 0.0]]), "NaN"),
             (torch.zeros(2, 2), r"shape \[M, 3\]"),
             (torch.zeros(0, 3), r"shape \[M, 3\]")]
    for pos, message in cases:
        with pytest.raises(ValueError, match=message):
            add_columns(model, pos, optimizer=opt)
        assert model.num_columns == N and model.edges.num_edges == E
    with pytest.raises(ValueError, match="cannot join the input area"):
        add_columns(model, torch.tensor([[0.5, 0.5, 0.0]]), areas={"input": [0]})
    assert model.num_columns == N


def test_training_grows_the_sheet_from_the_config_and_resumes(tmp_path):
    grow = TINY + ["scale.area=area1", "scale.at_step=6", "plasticity=rigl",
                   "plasticity.every=4"]
    train(compose(grow), tmp_path / "straight")
    model, geometry, _, _ = load_model(tmp_path / "straight", with_data=False)
    assert model.columnformer.num_columns == 80 + 33  # area1: 4x4 -> 7x7 lattice
    assert geometry.area("area1").numel() == 49 and geometry.area("input").numel() == 64
    # stop after the growth, resume into a fresh model built from the config: same result
    train(compose(grow + ["train.max_steps=12"]), tmp_path / "split")
    train(compose(grow + [f"train.resume={tmp_path / 'split'}"]), tmp_path / "split")
    a, b = (load_checkpoint(tmp_path / r)["model"] for r in ("straight", "split"))
    assert torch.equal(a["columnformer.edges.index"], b["columnformer.edges.index"])
    assert torch.allclose(a["columnformer.column_embed"], b["columnformer.column_embed"],
                          atol=1e-5)


def test_bad_scale_config_fails_before_training(tmp_path):
    with pytest.raises(KeyError, match="Unknown area 'V9'"):
        train(compose(TINY + ["scale.area=V9", "scale.at_step=3"]), tmp_path)
    with pytest.raises(ValueError, match="scale.at_step must be >= 1"):
        train(compose(TINY + ["scale.area=area1", "scale.at_step=0"]), tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_refine_grid_names_the_areas_it_knows():
    model = Columnformer(GEO, channels=8, steps=3)
    with pytest.raises(KeyError, match="Unknown area 'V2'. This sheet has areas"):
        refine_grid(model, "V2")


def test_bad_arguments_are_refused_before_anything_changes():
    model = Columnformer(GEO, channels=8, steps=4, heads=1)
    N, E = model.num_columns, model.edges.num_edges
    new = torch.tensor([[0.5, 0.5, 2.0]])
    cases = [(dict(areas={"aera1": [0]}), r"add_columns: unknown area 'aera1'. This sheet has "
                                          r"areas: area0, area1"),
             (dict(areas={"area1": [0.7]}), r"area 'area1': expected a 1-D list of integer "
                                            r"indices into pos"),
             (dict(areas={"area1": [3]}), r"indices into pos must be in \[0, 0\] \(got min 3"),
             (dict(areas=[0]), r"expected 'areas' to be a dict"),
             (dict(wiring="knn"), r"expected 'wiring' to be a wiring rule"),
             (dict(optimizer="adam"), r"expected 'optimizer' to be a torch.optim.Optimizer")]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            add_columns(model, new, **kwargs)
        assert model.num_columns == N and model.edges.num_edges == E
    with pytest.raises(TypeError, match=r"add_columns: expected a Columnformer or a model "
                                        r"holding one"):
        add_columns(object(), new)
    with pytest.raises(ValueError, match=r"factor must be an integer >= 2 \(got 2.5\)"):
        refine_grid(model, "area1", 2.5)
