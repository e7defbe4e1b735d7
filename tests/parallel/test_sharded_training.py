"""Column-sharded training (``parallel.columns``) through ``train()``: 2 processes sharing
one sheet follow one process step for step (loss, every parameter); 4 processes as
2 data groups x 2 column shards too; the checkpoint holds the whole sheet and resumes on
another number of processes; bad layouts are refused on every process."""
import datetime
import os

import pytest
import torch
import torch.multiprocessing as mp

from colgraph.checkpoint import load_checkpoint
from colgraph.parallel import Partition
from colgraph.parallel.state import row_kinds
from colgraph.restore import load_model
from colgraph.training import train

from conftest import TINY, compose, free_port

BASE = TINY + ["train.epochs=1", "train.max_steps=5", "optim.warmup_epochs=0",
               "model.channels=8"]



def _worker(rank: int, world: int, port: int, overrides: list, run_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    # the group exists before train(): a hang fails the test after a timeout
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    try:
        train(compose(overrides), run_dir)  # one run directory, as torchrun's processes share
    finally:
        dist.destroy_process_group()


def _spawn(overrides, run_dir, world):
    mp.spawn(_worker, args=(world, free_port(), overrides, str(run_dir)), nprocs=world,
             join=True)


def _whole(path):
    """The trained model's tensors in the ORIGINAL column order (a sharded run stores its
    sheet in partition order)."""
    model, *_ = load_model(path, with_data=False)
    state = {k: v for k, v in model.state_dict().items() if torch.is_tensor(v)}
    stored = load_checkpoint(path).get("partition")
    if stored is None:
        return state, model.columnformer.edges.index
    order = Partition.from_state_dict(stored).order
    by_key, _, edges = row_kinds(model)
    inverse = torch.argsort(order)
    src, dst = order[edges.index]  # original ids
    n = order.numel()
    edge_order = torch.argsort(dst * n + src)  # back to the original canonical order
    out = {}
    for key, t in state.items():
        kind = by_key.get(key)
        if kind == "column":
            t = t[inverse]
        elif kind == "edge":
            t = t[edge_order]
        elif kind == "edge list":
            t = torch.stack([src, dst])[:, edge_order]
        out[key] = t
    return out, out["columnformer.edges.index"]


def _same_run(one, other, atol=2e-5, metric_tol=1e-4):
    a, ia = _whole(one)
    b, ib = _whole(other)
    assert torch.equal(ia, ib)
    floats = [k for k in a if a[k].is_floating_point() and k != "columnformer.edges.pos"]
    assert len(floats) > 10
    for k in floats:
        assert torch.allclose(a[k], b[k], atol=atol, rtol=0), \
            f"{k}: max diff {float((a[k] - b[k]).abs().max()):.3g}"
    rows = [(one / "metrics.csv").read_text().splitlines(),
            (other / "metrics.csv").read_text().splitlines()]
    head = rows[0][0].split(",")
    for r0, r1 in zip(rows[0][1:], rows[1][1:]):
        for name, x, y in zip(head, r0.split(","), r1.split(",")):
            if name in ("train_loss", "test_loss", "test_acc", "wiring_length"):
                assert abs(float(x) - float(y)) < metric_tol, (name, x, y)


def _from_step_one(tmp_path, name, world, extra=(), **tolerance):
    """A one-process run's first step, continued to step 5 on ``world`` processes that
    share the sheet (the same initial weights: a sheet built on shards draws its own)."""
    other = any(e.startswith("geometry=") for e in extra)  # then the stack's widths go
    first = tmp_path / "first"
    base = [o for o in BASE if not (other and o.startswith("geometry.widths"))] + list(extra)
    if not first.exists():  # (a plasticity or migration schedule from the resume on: it
        # cannot start before its first update; everything else from the start)
        plastic = [e for e in extra if e.startswith(("plasticity", "migrate"))]
        train(compose([o for o in base if o not in plastic] + ["train.max_steps=1"]), first)
        train(compose(base + [f"train.resume={first}"]), tmp_path / "one")
    _spawn(base + ["parallel.columns=2", f"train.resume={first}"], tmp_path / name, world)
    # each process of the sheet wrote its rows: one shard directory, the checkpoint's
    shards = sorted(p.name for p in (tmp_path / name).glob("checkpoint-step*"))
    assert shards == ["checkpoint-step000000005.shards"]
    assert load_checkpoint(tmp_path / name)["shards"]["dir"] == shards[0]
    _same_run(tmp_path / "one", tmp_path / name, **tolerance)


def test_two_processes_sharing_a_sheet_follow_one_process(tmp_path):
    _from_step_one(tmp_path, "two", 2)
    # the connectome of the sharded run is the whole sheet, nodes under their original ids
    from colgraph.connectome import to_networkx

    sharded, one = to_networkx(tmp_path / "two"), to_networkx(tmp_path / "one")
    assert sorted(sharded.nodes) == sorted(one.nodes)
    assert sorted(sharded.edges) == sorted(one.edges)
    for s, t, w in one.edges(data="weight"):
        assert abs(sharded.edges[s, t]["weight"] - w) < 1e-4
    # another partition method cannot take effect on a resumed sheet: refused before work
    from colgraph.config import ParallelConfig
    from colgraph.geometry import build_geometry
    from colgraph.training.assembly import split_sheet

    with pytest.raises(ValueError, match="parallel.partition=metis cannot take effect"):
        split_sheet(build_geometry(compose(BASE).geometry),
                    ParallelConfig(columns=2, partition="metis"),
                    load_checkpoint(tmp_path / "two"))
    # the whole sheet resumes on ONE process (its column order kept) and goes on
    more = BASE + ["train.max_steps=7", f"train.resume={tmp_path / 'two'}"]
    train(compose(more), tmp_path / "two")
    train(compose(BASE + ["train.max_steps=7"]), tmp_path / "one7")
    assert load_checkpoint(tmp_path / "two")["step"] == 7
    _same_run(tmp_path / "one7", tmp_path / "two")


@pytest.mark.parametrize("sheet", [
    # a flat grid with k-NN wiring, activation recomputation and bf16 matmul weights (bf16
    # rounds what float order changes: a looser tolerance)
    ["geometry=grid", "model.recompute=true", "model.weight_dtype=bfloat16"],
    # random positions with k-NN + long-range (EDR) wiring, low-rank weight sharing
    ["geometry=random", "model.sharing=lowrank"],
])
@pytest.mark.filterwarnings("ignore:The input map")  # random positions: a distorted map
def test_other_sheets_and_models_on_two_processes_follow_one_process(tmp_path, sheet):
    bf16 = "model.weight_dtype=bfloat16" in sheet
    _from_step_one(tmp_path, "two", 2, sheet, atol=2e-3 if bf16 else 2e-5,
                   metric_tol=2e-3 if bf16 else 1e-4)


def test_two_data_groups_of_two_column_shards_follow_one_process(tmp_path):
    _from_step_one(tmp_path, "mesh", 4)


def test_the_smoothness_loss_on_a_sharded_sheet_follows_one_process(tmp_path):
    """The local contrastive loss reads random distant partners anywhere on the sheet: their
    responses come from their owners; loss, parameters and the test smoothness measure
    equal one process's."""
    _from_step_one(tmp_path, "two", 2, ["smoothness.weight=0.5", "smoothness.negatives=4"])
    rows = [(tmp_path / d / "metrics.csv").read_text().splitlines() for d in ("one", "two")]
    head = rows[0][0].split(",")
    at = head.index("smoothness")
    assert abs(float(rows[0][-1].split(",")[at]) - float(rows[1][-1].split(",")[at])) < 1e-5


def test_connectome_snapshots_of_a_sharded_run_are_the_whole_sheet(tmp_path):
    """``train.connectome_every``: the processes of the sheet measure their edges'
    attention together and the first writes the whole sheet, equal to one process's
    snapshot (an epoch of 3 batches, resumed from a one-process first step)."""
    import networkx as nx

    base = BASE + ["train.batch_size=512", "train.max_steps=null"]
    first = tmp_path / "first"
    train(compose(base + ["train.max_steps=1"]), first)
    more = base + ["train.connectome_every=1", f"train.resume={first}"]
    train(compose(more), tmp_path / "one")
    _spawn(more + ["parallel.columns=2"], tmp_path / "two", 2)
    one, two = (nx.read_graphml(tmp_path / d / "connectome" / "epoch0001.graphml")
                for d in ("one", "two"))
    assert sorted(one.nodes) == sorted(two.nodes) and sorted(one.edges) == sorted(two.edges)
    for s, t, w in one.edges(data="weight"):
        assert abs(two.edges[s, t]["weight"] - w) < 1e-4


@pytest.mark.parametrize("rule", ["rigl", "set"])
def test_learned_wiring_on_a_sharded_sheet_follows_one_process(tmp_path, rule):
    """Prune and grow (updates at steps 2 and 4) on 2 processes sharing the sheet: rank 0
    decides from every process's statistics (rigl: gradient records), each applies its
    part; the edges, every parameter and plasticity.csv equal one process's, and the
    schedule's statistics resume from the shards."""
    plastic = [f"plasticity={rule}", "plasticity.every=2", "plasticity.stop=6"]
    _from_step_one(tmp_path, "two", 2, plastic)
    rows = [(tmp_path / d / "plasticity.csv").read_text().splitlines() for d in ("one", "two")]
    assert len(rows[0]) >= 3 and len(rows[0]) == len(rows[1])
    for a, b in zip(rows[0][1:], rows[1][1:]):
        for x, y in zip(a.split(",")[:5], b.split(",")[:5]):  # step, removed, added, edges...
            assert abs(float(x) - float(y)) < 1e-6, (a, b)
    more = BASE + plastic + ["train.max_steps=7", "parallel.columns=2",
                             f"train.resume={tmp_path / 'two'}"]
    _spawn(more, tmp_path / "two", 2)  # resumes the schedule's statistics from its shards
    train(compose(BASE + plastic + ["train.max_steps=7", f"train.resume={tmp_path / 'one'}"]),
          tmp_path / "one")
    _same_run(tmp_path / "one", tmp_path / "two")


def test_a_world_that_the_column_groups_do_not_divide_is_refused(tmp_path):
    with pytest.raises(Exception, match="do not divide the 2 processes"):
        _spawn(BASE + ["parallel.columns=3"], tmp_path / "bad", 2)


@pytest.mark.parametrize("overrides, message", [
    (["parallel.columns=0"], "parallel.columns must be >= 1"),
    (["parallel.partition=kl"], "parallel.partition"),
    (["parallel.partition=metis"], "no effect with parallel.columns=1"),
    (["parallel.columns=2", "scale.area=input", "scale.at_step=2"], "scale.area"),
])
def test_settings_a_sharded_sheet_cannot_use_are_refused_before_any_work(overrides, message):
    from colgraph.config import validate_config

    with pytest.raises(ValueError, match=message):
        validate_config(compose(BASE + overrides))


def test_a_grown_sheet_cannot_resume_sharded():
    from colgraph.config import ParallelConfig
    from colgraph.geometry import build_geometry
    from colgraph.training.assembly import split_sheet

    geometry = build_geometry(compose(BASE).geometry)
    grown = {"path": "run/checkpoint.pt", "partition": None,
             "model": {"columnformer.edges.pos": torch.zeros(geometry.num_columns + 5, 3)}}
    with pytest.raises(ValueError, match="grown to 85 columns .* Resume it with "
                                         "parallel.columns=1"):
        split_sheet(geometry, ParallelConfig(columns=2), grown)


def test_parallel_columns_without_torchrun_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ValueError, match="but this run is one process: launch it with torchrun"):
        train(compose(BASE + ["parallel.columns=2"]), tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists()


def _crash_worker(rank: int, world: int, port: int, overrides: list, run_dir: str) -> None:
    """A sharded run whose second checkpoint dies while its shards are written."""
    from colgraph.parallel import checkpoint as sharded

    real = sharded.save_shards
    calls = []

    def dies_the_second_time(directory, *args, **kwargs):
        calls.append(directory)
        if len(calls) == 2:
            real(directory, *args, **kwargs)  # the files are there, not yet renamed...
            raise OSError(28, "No space left on device")  # ...when the disk fills
        return real(directory, *args, **kwargs)

    sharded.save_shards = dies_the_second_time
    from colgraph.checkpoint import CheckpointWriteError

    with pytest.raises(CheckpointWriteError, match="the disk is full .* The last good "
                                                   "checkpoint, .*, is intact"):
        _worker(rank, world, port, overrides, run_dir)


def test_a_crash_while_writing_shards_leaves_the_last_checkpoint_whole(tmp_path):
    """The checkpoint file names complete shards only: a save that dies mid-way leaves the
    previous file and its shards, and the run resumes from them."""
    run = tmp_path / "run"
    overrides = BASE + ["parallel.columns=2", "train.checkpoint_every=2"]
    mp.spawn(_crash_worker, args=(2, free_port(), overrides, str(run)), nprocs=2, join=True)
    state = load_checkpoint(run)
    assert state["step"] == 2
    assert (run / state["shards"]["dir"]).is_dir()  # the shards it names are whole
    _spawn(BASE + ["parallel.columns=2", f"train.resume={run}"], run, 2)
    assert load_checkpoint(run)["step"] == 5
    left = sorted(p.name for p in run.glob("checkpoint-step*"))
    assert left == ["checkpoint-step000000005.shards"]  # old and partial shards removed


def test_migration_on_a_sharded_sheet_follows_one_process(tmp_path):
    """Columns migrate (steps 2 and 4) on 2 processes sharing a scrambled sheet: the first
    decides in the columns' original ids from every process's statistics, all apply the
    move; positions, weights and migration.csv equal one process's, and the schedule's
    statistics resume from the shards."""
    migrate = ["geometry.scramble=0", "migrate.every=2", "migrate.method=quadratic",
               "migrate.stop=6"]
    _from_step_one(tmp_path, "two", 2, migrate)

    def positions(run):
        pos = load_checkpoint(run)["model"]["columnformer.edges.pos"]
        stored = load_checkpoint(run).get("partition")
        return pos if stored is None else pos[torch.argsort(
            Partition.from_state_dict(stored).order)]

    one, two = positions(tmp_path / "one"), positions(tmp_path / "two")
    assert torch.equal(one, two)
    rows = [(tmp_path / d / "migration.csv").read_text().splitlines() for d in ("one", "two")]
    assert len(rows[0]) == 3 and len(rows[0]) == len(rows[1])  # steps 2 and 4
    for a, b in zip(rows[0][1:], rows[1][1:]):
        for x, y in zip(a.split(","), b.split(",")):
            assert abs(float(x) - float(y)) < 1e-4, (a, b)
    more = BASE + migrate + ["train.max_steps=7", "parallel.columns=2",
                             f"train.resume={tmp_path / 'two'}"]
    _spawn(more, tmp_path / "two", 2)  # resumes the migration statistics from the shards
    train(compose(BASE + migrate + ["train.max_steps=7", f"train.resume={tmp_path / 'one'}"]),
          tmp_path / "one")
    _same_run(tmp_path / "one", tmp_path / "two")
    assert torch.equal(positions(tmp_path / "one"), positions(tmp_path / "two"))
