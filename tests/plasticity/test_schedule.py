import csv
import gc

import pytest
import torch

from colgraph import Columnformer
from colgraph.config import to_container
from colgraph.geometry import Geometry, hops_from, knn, stack
from colgraph.checkpoint import load_checkpoint
from colgraph.plasticity import GROW_RULES, PRUNE_CRITERIA, Plasticity, PlasticityConfig
from colgraph.restore import load_model
from colgraph.training import train

from conftest import CONFIG_DIR, TINY, compose

GEO = stack([6, 4, 2], spacing=2.0, wiring=knn(k=6))


def _setup(model_options=None, **cfg):
    torch.manual_seed(0)
    model = Columnformer(GEO, channels=8, steps=3, **(model_options or {}))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    config = PlasticityConfig(**{"name": "custom", "every": 1, **cfg})
    return model, opt, Plasticity(model, config, total_steps=20, optimizer=opt)


def _train_step(model, opt, plasticity, step):
    recording = plasticity.wants_record(step + 1)
    if recording:
        plasticity.start_recording()
    out = model(torch.randn(4, 36, 8))
    loss = out.output.pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    records = plasticity.stop_recording() if recording else None
    plasticity.observe(out.attention)
    return plasticity.maybe_update(step + 1, records)


@pytest.mark.parametrize("prune", list(PRUNE_CRITERIA))
@pytest.mark.parametrize("grow", list(GROW_RULES))
def test_constant_budget_keeps_edges_degrees_and_paths(prune, grow):
    model, opt, plasticity = _setup(prune=prune, grow=grow, drop_fraction=0.5)
    E0, n = model.edges.num_edges, model.num_columns
    hops0 = hops_from(model.edge_index, n, model.input_index)[model.output_index]
    changed = 0
    for step in range(6):
        stats = _train_step(model, opt, plasticity, step)
        assert stats is not None and stats["edges"] == model.edges.num_edges == E0
        changed += stats["removed"]
        model.edges.check()
        assert (model.edges.in_degree() >= 1).all()
        hops = hops_from(model.edge_index, n, model.input_index)[model.output_index]
        assert (hops >= 0).all() and hops.max() <= hops0.max()
        assert plasticity.attention.shape == (model.edges.num_edges,)
    assert changed > 0


def test_anneal_budget_reaches_target_density_and_drop_fraction_decays():
    model, opt, plasticity = _setup(budget="anneal", target_density=0.5, grow="random",
                                    stop=10, drop_fraction=0.2)
    E0 = model.edges.num_edges
    fractions = [plasticity.drop_fraction(s) for s in range(0, 11)]
    assert fractions[0] == pytest.approx(0.2) and fractions[-1] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(fractions, fractions[1:]))  # cosine decay
    for step in range(12):
        _train_step(model, opt, plasticity, step)
    assert model.edges.num_edges == round(0.5 * E0)
    assert (model.edges.in_degree() >= 1).all()


def test_schedule_window():
    _, _, plasticity = _setup(start=4, stop=10, every=3)
    steps = [s for s in range(20) if plasticity.is_update_step(s)]
    assert steps == [4, 7, 10]
    _, _, off = _setup(name="none", every=50)  # off: every setting at its default
    assert not any(off.is_update_step(s) for s in range(20))


@pytest.mark.parametrize("bad,message", [
    (dict(drop_fraction=1.5), "drop_fraction must be a fraction in"),
    (dict(drop_fraction=-0.1), "drop_fraction must be a fraction in"),
    (dict(ema=float("nan")), "ema must be a fraction in"),
    (dict(target_density=0.0), "target_density must be > 0"),
    (dict(every=0), "every must be >= 1"),
    (dict(start=5, stop=2), "must be >= 0 and <="),
    (dict(min_in_degree=0), "min_in_degree must be >= 1"),
    (dict(prune="magnitude"), "Unknown plasticity.prune 'magnitude'. Choices"),
    (dict(grow="gradiant"), "Unknown plasticity.grow 'gradiant'. Choices"),
    (dict(name="rigl2"), "Unknown plasticity.name"),
    (dict(name="none", every=-1), "every must be >= 1"),
    (dict(lam=-1.0), "lam must be > 0"),
    (dict(pool=0), "pool must be >= 1"),
    (dict(name="custom", prune="attention", p=2.0),
     r"plasticity.p=2.0 does not apply to plasticity.prune=attention \(its settings: none\); "
     r"only prune=wiring"),
    (dict(name="custom", grow="random", pool=4),
     r"plasticity.pool=4 does not apply to plasticity.grow=random"),
    (dict(name="custom", grow="random", lam=2.0),
     r"only grow=geometric \| gradient \| gradient_distance"),
])
def test_bad_config_is_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        PlasticityConfig(**bad)


def test_a_rules_own_settings_are_accepted():
    assert PlasticityConfig("custom", prune="wiring", p=2.0).p == 2.0
    assert PlasticityConfig("custom", grow="geometric", lam=3.0).lam == 3.0
    assert PlasticityConfig("custom", grow="gradient_distance", pool=4, lam=3.0).pool == 4


def test_budget_that_would_empty_a_column_is_refused():
    model, opt, _ = _setup()
    keep = model.edges.index[1] != 5
    with pytest.raises(ValueError, match="fewer than 1 incoming"):
        model.edges.edit(keep, optimizer=opt)


def test_hand_edited_model_is_refused():
    model = Columnformer(GEO, channels=8, steps=3)
    model.blocks[0].attn.edge_bias.data = model.blocks[0].attn.edge_bias.data[:-2]
    with pytest.raises(RuntimeError, match="out of step"):
        Plasticity(model, PlasticityConfig.preset("set"), total_steps=10)


def test_gradient_rule_without_records_is_refused():
    model, opt, plasticity = _setup(grow="gradient")
    with pytest.raises(ValueError, match="needs attention records"):
        plasticity.update(step=1)


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONFIG_DIR / "plasticity").glob("*.yaml")))
def test_every_preset_runs_one_update(preset):
    cfg = PlasticityConfig(**to_container(compose([f"plasticity={preset}"]).plasticity))
    assert cfg.name == preset
    assert cfg == PlasticityConfig.preset(preset, **({"every": 25} if preset == "custom" else {}))
    if not cfg.enabled:
        return
    torch.manual_seed(0)
    model = Columnformer(GEO, channels=8, steps=3)
    opt = torch.optim.AdamW(model.parameters())
    plasticity = Plasticity(model, cfg, total_steps=1000, optimizer=opt)
    stats = None
    for step in range(cfg.every):
        stats = _train_step(model, opt, plasticity, step) or stats
    assert stats is not None and stats["removed"] > 0 and stats["added"] == stats["removed"]


# ---------------------------------------------------------------------- training
PLASTIC = TINY + ["plasticity=rigl", "plasticity.every=2", "plasticity.drop_fraction=0.5",
                  "plasticity.budget=anneal", "plasticity.target_density=0.8"]


def test_training_with_plasticity_logs_and_checkpoints_the_current_wiring(tmp_path):
    metrics = train(compose(PLASTIC + ["train.connectome_every=2"]), tmp_path)
    rows = list(csv.DictReader((tmp_path / "plasticity.csv").open()))
    assert len(rows) >= 3 and int(rows[0]["removed"]) > 0
    assert {"removed", "added", "edges", "mean_edge_length",
            "attention_weighted_length"} <= rows[0].keys()
    state = load_checkpoint(tmp_path)
    model, geometry, _, _ = load_model(tmp_path, with_data=False)
    cf = model.columnformer
    geometry0 = Geometry.from_state_dict(state["geometry"])  # as constructed
    assert geometry.num_edges == cf.edges.num_edges  # load_model gives the sheet as trained
    assert torch.equal(cf.edge_index, state["model"]["columnformer.edges.index"])
    assert cf.edges.num_edges == int(rows[-1]["edges"]) < geometry0.num_edges
    assert cf.edges.num_edges == int(list(csv.DictReader((tmp_path / "metrics.csv").open()))[-1]["edges"])
    import networkx as nx

    snap = nx.read_graphml(tmp_path / "connectome" / "epoch0002.graphml")
    assert snap.number_of_edges() == cf.edges.num_edges  # snapshots see the current wiring
    assert metrics["test_acc"] > 0.1


def test_resume_continues_on_the_edited_wiring_exactly(tmp_path):
    """2 epochs straight == 1 epoch, stop, resume for the second: same wiring, same weights."""
    train(compose(PLASTIC), tmp_path / "straight")
    train(compose(PLASTIC + ["train.max_steps=12"]), tmp_path / "split")  # same schedule
    train(compose(PLASTIC + [f"train.resume={tmp_path / 'split'}"]), tmp_path / "split")
    a = load_checkpoint(tmp_path / "straight")
    b = load_checkpoint(tmp_path / "split")
    assert a["step"] == b["step"]
    for k, v in a["model"].items():  # the edges exactly; weights to float round-off
        if not isinstance(v, torch.Tensor):
            assert k.endswith("_extra_state") and str(v) == str(b["model"][k])
        elif v.dtype.is_floating_point and k != "columnformer.edges.length":
            assert torch.allclose(v, b["model"][k], atol=1e-5), k
        else:
            assert torch.equal(v, b["model"][k]), k
    assert torch.equal(a["plasticity"]["attention"], b["plasticity"]["attention"])


def test_lengths_not_from_the_metric_are_flagged():
    import networkx as nx

    from colgraph.geometry import from_networkx

    G = nx.grid_2d_graph(5, 5)
    for v in G:
        G.nodes[v]["pos"] = v
        G.nodes[v]["area"] = "input,output"
    for u, v in G.edges:
        G.edges[u, v]["length"] = 3.0  # e.g. a path along a folded surface
    model = Columnformer(from_networkx(G, length="length"), channels=8, steps=8)
    with pytest.warns(UserWarning, match="differ from its 'euclidean' metric"):
        Plasticity(model, PlasticityConfig.preset("set"), total_steps=10)


def test_a_discarded_schedule_leaves_the_edge_registry():
    model = Columnformer(GEO, channels=8, steps=3)
    blocks = len(model.edges.per_edge())
    plasticity = Plasticity(model, PlasticityConfig.preset("set"), total_steps=10)
    assert len(model.edges.per_edge()) == blocks + 1  # its attention statistics
    del plasticity
    gc.collect()
    assert len(model.edges.per_edge()) == blocks
    with Plasticity(model, PlasticityConfig.preset("set", every=1), total_steps=10) as p:
        assert p.maybe_update(step=1)["added"] > 0
    assert len(model.edges.per_edge()) == blocks  # closed on leaving the block
    present = set(model.edges.index[0, model.edges.index[1] == 0].tolist())
    source = next(s for s in range(1, model.num_columns) if s not in present)
    assert model.edges.edit(add=torch.tensor([[source], [0]])).num_added == 1  # edits work
    model.edges.check()


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="Unknown plasticity preset 'rig'. Choices"):
        PlasticityConfig.preset("rig")


def test_min_in_degree_above_a_columns_degree_still_updates():
    """A column with 2 inputs under min_in_degree=3 keeps both; updates still run."""
    model, opt, plasticity = _setup(min_in_degree=3, grow="random", drop_fraction=0.9,
                                    keep_reachable=False)
    low = model.edges.index[:, model.edges.index[1] == 0][:, 2:]  # column 0: cut to 2 inputs
    keep = ~((model.edges.index[1] == 0) & torch.isin(model.edges.index[0], low[0]))
    model.edges.edit(keep, optimizer=opt)
    for step in range(3):
        stats = _train_step(model, opt, plasticity, step)
    assert stats["removed"] > 0 and model.edges.in_degree()[0] >= 2
    assert (model.edges.in_degree() >= 2).all()


@pytest.mark.parametrize("options", [{"backend": "pyg"}, {"backend": "dense"},
                                     {"tied_depth": False}, {"heads": 2, "value_proj": True}],
                         ids=["pyg", "dense", "untied", "heads_value_proj"])
def test_gradient_plasticity_on_every_model_variant(options):
    model, opt, plasticity = _setup(options, grow="gradient_distance", prune="bias")
    for step in range(3):
        stats = _train_step(model, opt, plasticity, step)
        assert stats["removed"] == stats["added"] > 0
        model.edges.check()
    assert all(s.attn.edge_bias.shape[0] == model.edges.num_edges for s in model.blocks)


def test_a_pool_too_large_to_score_is_refused_before_training(monkeypatch):
    import colgraph.plasticity.grow as grow

    monkeypatch.setattr(grow, "MAX_CANDIDATES", 100)
    model = Columnformer(GEO, channels=8, steps=3)
    with pytest.raises(ValueError, match=r"plasticity.pool=8 would score 448 candidate"):
        Plasticity(model, PlasticityConfig.preset("rigl"), total_steps=10)
    Plasticity(model, PlasticityConfig.preset("set"), total_steps=10)  # no pool to score


@pytest.mark.parametrize("override", ["plasticity.every=often", "plasticity.grow=[1,2]",
                                      "scale.factor=two"])
def test_mistyped_config_values_are_refused_at_compose(override):
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    with pytest.raises((HydraException, OmegaConfBaseException)):
        compose([override])


@pytest.mark.parametrize("override,message", [
    ("plasticity.drop_fraction=nan", "drop_fraction must be a fraction"),
    ("plasticity.target_density=nan", "target_density must be > 0"),
    ("plasticity.lam=nan", "lam must be > 0"),
    ("plasticity.stop=-3", "must be >= 0 and <="),
    ("scale.factor=1", "scale.factor >= 2"),
    ("+plasticity.dropfraction=0.2", r"Unknown key\(s\) plasticity.dropfraction. Choices: "
                                     r"anneal, budget, drop_fraction"),
    ("+scale.areas=V1", r"Unknown key\(s\) scale.areas. Choices: area, at_step, factor"),
    ("plasticity.pool=4", "plasticity.pool=4 does not apply to plasticity.grow=random"),
])
def test_bad_values_from_the_command_line_fail_before_data_loads(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        train(compose(TINY + ["plasticity=set", "scale.area=area1", "scale.at_step=2",
                              override]), tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_history_of_a_run_without_plasticity_is_a_clear_error(tmp_path):
    from colgraph.plasticity import plot_history, read_history

    with pytest.raises(FileNotFoundError, match="plasticity=none"):
        plot_history(tmp_path, tmp_path / "p.png")
    (tmp_path / "plasticity.csv").write_text("step,edges\n")
    with pytest.raises(ValueError, match="no updates yet"):
        read_history(tmp_path)
