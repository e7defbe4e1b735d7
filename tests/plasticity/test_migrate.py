"""Migration: columns that move during training to shorten their wiring."""
import csv

import networkx as nx
import numpy as np
import pytest
import torch

from colgraph import Columnformer
from colgraph.checkpoint import load_checkpoint
from colgraph.config import check_geometry, validate_config
from colgraph.connectome.placement import migration_step
from colgraph.geometry import grid, knn, scramble, stack
from colgraph.plasticity import MigrateConfig, Migration
from colgraph.training import train

from conftest import TINY, compose

GEO = grid(8, wiring=knn(k=8))


def _model(geo=GEO):
    return Columnformer(geo, channels=8, steps=2, input_area="input", output_area="output")


def _wire(edges):
    return float(edges.length.mean())


@pytest.mark.parametrize("method", ["greedy", "anneal", "quadratic"])
def test_migration_shortens_a_scrambled_sheet_and_never_changes_the_computation(method):
    model = _model(scramble(GEO, seed=0))
    model.eval()
    x = torch.randn(2, model.input_index.numel(), 8)
    out = model(x).state.clone()
    cfg = MigrateConfig(every=1, method=method, sweeps=4,
                        **({"temperature": 0.01} if method == "anneal" else {}))
    migration = Migration(model, cfg, total_steps=10)
    before = _wire(model.edges)
    stats = migration.maybe_update(step=1)
    assert stats["wire_after"] < stats["wire_before"] and _wire(model.edges) < before
    assert 0 < stats["moved_fraction"] <= 1 and stats["mean_displacement"] > 0
    assert torch.equal(model(x).state, out)  # columns moved, the network is the same
    assert migration.maybe_update(step=1) is None  # once per step


def test_quadratic_migration_recovers_most_of_a_scrambled_grid():
    model = _model(scramble(GEO, seed=1))
    migration = Migration(model, MigrateConfig(every=1, method="quadratic", sweeps=4), 10)
    scrambled = _wire(model.edges)
    for step in range(1, 4):
        migration.maybe_update(step)
    saved = (scrambled - _wire(model.edges)) / (scrambled - _wire(_model().edges))
    assert saved > 0.8


def test_pinned_areas_stay_and_within_area_keeps_areas_on_their_places():
    geo = scramble(stack([6, 4], wiring=knn(k=6)), seed=0)
    model = _model(geo)
    places = {a: {tuple(p) for p in geo.pos[geo.area(a)].tolist()} for a in ("area0", "area1")}
    cfg = MigrateConfig(every=1, pinned=["area1"], within_area=True, sweeps=3)
    Migration(model, cfg, 10).maybe_update(1)
    pos = model.edges.pos
    assert torch.equal(pos[geo.area("area1")], geo.pos[geo.area("area1")])
    assert {tuple(p) for p in pos[geo.area("area0")].tolist()} == places["area0"]


def test_migration_step_is_never_worse_than_staying():
    rng = np.random.default_rng(0)
    w = rng.random(GEO.num_edges)
    r = migration_step(GEO.edge_index, w, GEO.pos, method="greedy", sweeps=3)
    assert min(r.cost) == pytest.approx(r.cost[-1]) or r.cost[-1] >= min(r.cost)
    assert sorted(r.site.tolist()) == list(range(GEO.num_columns))  # a permutation


@pytest.mark.parametrize("settings, match", [
    ({"every": -1}, "every must be >= 0"),
    ({"every": 5, "method": "spring"}, "Unknown migrate.method"),
    ({"every": 5, "sweeps": 0}, "sweeps"),
    ({"every": 5, "ema": 1.0}, "ema"),
    ({"every": 5, "temperature": float("nan")}, "temperature"),
    ({"every": 5, "method": "quadratic", "within_area": True}, "within_area"),
    ({"every": 0, "method": "anneal"}, "migration is off"),
    ({"every": 5, "temperature": 0.5}, "read by migrate.method=anneal only"),
    ({"every": 5, "start": 10, "stop": 5}, "start"),
])
def test_bad_settings_are_refused(settings, match):
    with pytest.raises(ValueError, match=match):
        MigrateConfig(**settings)


def test_pinned_areas_that_do_not_exist_or_pin_everything_are_refused_before_training():
    for pinned, match in ((["V9"], "does not have"), (["area0", "area1"], "no column")):
        cfg = compose(TINY + ["migrate.every=5", f"migrate.pinned=[{','.join(pinned)}]"])
        checked = validate_config(cfg)
        geo = stack([8, 4], wiring=knn(k=6))
        with pytest.raises(ValueError, match=match):
            check_geometry(checked, geo)
    with pytest.raises(ValueError, match="nothing can move"):
        Migration(_model(stack([4, 2], wiring=knn(k=4))),
                  MigrateConfig(every=1, pinned=["area0", "area1"]), 10)
    with pytest.raises(KeyError, match="Unknown area"):
        Migration(_model(), MigrateConfig(every=1, pinned=["V9"]), 10)


def test_bad_positions_for_a_migration_step_are_refused():
    w = np.ones(GEO.num_edges)
    bad = GEO.pos.clone()
    bad[3, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        migration_step(GEO.edge_index, w, bad)
    with pytest.raises(ValueError, match="weight"):
        migration_step(GEO.edge_index, -w, GEO.pos)
    with pytest.raises(ValueError, match="All 64 columns are pinned"):
        migration_step(GEO.edge_index, w, GEO.pos, pinned=np.ones(64, bool))


MIGRATE = TINY + ["geometry.scramble=0", "migrate.every=5", "migrate.method=quadratic",
                  "plasticity=set", "plasticity.every=4", "plasticity.grow=geometric",
                  "train.connectome_every=1"]


def _rows(run_dir, name):
    return [{k: v for k, v in r.items() if k != "time"}
            for r in csv.DictReader((run_dir / name).open())]


def test_a_run_with_migration_logs_moves_and_resumes_exactly(tmp_path):
    """Migration with plasticity (geometric growth) and snapshots; a run stopped inside
    epoch 1 and resumed ends with the positions, weights and logs of one that never
    stopped."""
    straight, part = tmp_path / "straight", tmp_path / "part"
    train(compose(MIGRATE), straight)
    rows = _rows(straight, "migration.csv")
    assert [int(r["step"]) for r in rows] == [5, 10, 15]  # stop: 3/4 of 24 steps
    assert float(rows[0]["wire_after"]) < float(rows[0]["wire_before"])
    train(compose(MIGRATE + ["train.max_steps=7"]), part)
    train(compose(MIGRATE + [f"train.resume={part}"]), part)
    a, b = load_checkpoint(straight), load_checkpoint(part)
    scrambled = scramble(stack([8, 4], wiring=knn(k=6)), seed=0).pos
    assert not torch.equal(a["model"]["columnformer.edges.pos"], scrambled)  # they moved
    for k, v in a["model"].items():
        if torch.is_tensor(v):
            assert torch.allclose(v.float(), b["model"][k].float(), atol=1e-5), k
    for name in ("metrics.csv", "migration.csv", "plasticity.csv"):
        assert _rows(part, name) == _rows(straight, name), name
    # connectome snapshots hold the positions of their epoch
    snaps = sorted((straight / "connectome").glob("*.graphml"))
    assert len(snaps) == 2
    first, last = (nx.read_graphml(p) for p in snaps)
    pos = [[tuple(G.nodes[v][c] for c in ("x", "y", "z") if c in G.nodes[v])
            for v in sorted(G.nodes, key=str)] for G in (first, last)]
    assert pos[0] != pos[1]


def test_geometric_growth_reads_the_positions_after_a_move():
    from colgraph.plasticity import Plasticity, PlasticityConfig

    model = _model()
    plasticity = Plasticity(model, PlasticityConfig.preset("set", grow="geometric"), 10)
    tree, x = plasticity._position_tree()
    model.edges.move(torch.randperm(64, generator=torch.Generator().manual_seed(0)))
    tree, x = plasticity._position_tree()
    assert np.allclose(x, model.edges.pos.numpy())


def test_a_migration_step_needs_positions():
    with pytest.raises(ValueError, match="positions"):
        migration_step(GEO.edge_index, np.ones(GEO.num_edges), None)
