"""Data-parallel training: 2 CPU processes (gloo) follow a 1-process run with the same
global batch; only rank 0 writes; a 2-process checkpoint resumes in 1 process."""
import csv
import os
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from colgraph.checkpoint import load_checkpoint
from colgraph.training import train

from conftest import CONFIG_DIR, TINY, compose, free_port

BASE = TINY + ["train.epochs=1", "train.max_steps=6", "optim.warmup_epochs=0"]



def _worker(rank: int, world: int, port: int, overrides: list, run_dirs: list) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    train(compose(overrides), run_dirs[rank])


def _spawn(overrides, run_dirs, world=2):
    mp.spawn(_worker, args=(world, free_port(), overrides, run_dirs), nprocs=world, join=True)


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    train(compose(BASE), tmp_path / "one")
    dirs = [str(tmp_path / "rank0"), str(tmp_path / "rank1")]
    _spawn(BASE, dirs)
    assert not (tmp_path / "rank1").exists()  # rank 1 writes nothing
    one, two = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "rank0")
    assert one["step"] == two["step"] == 6
    keys = [k for k in one["model"] if torch.is_tensor(one["model"][k])
            and one["model"][k].is_floating_point()]
    assert len(keys) > 10
    for k in keys:  # the same global batches: the same weights up to float order
        assert torch.allclose(one["model"][k], two["model"][k], atol=2e-5, rtol=0), k
    rows = (tmp_path / "rank0" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and "test_acc" in rows[0]  # one row (rank 0), reduced metrics
    # a 2-process checkpoint resumes in one process (positions are in global batches)
    metrics = train(compose(BASE + ["train.max_steps=8", f"train.resume={tmp_path / 'rank0'}"]),
                    tmp_path / "rank0")
    assert load_checkpoint(tmp_path / "rank0")["step"] == 8 and metrics["test_acc"] > 0


def _plastic_worker(rank: int, world: int, port: int, overrides: list, out: str) -> None:
    """A rank that saves its wiring after every prune / grow update."""
    from colgraph.plasticity import schedule

    real = schedule.Plasticity._apply

    def apply_and_dump(self, step, keep, add):
        stats = real(self, step, keep, add)
        torch.save({"index": self.edges.index.clone(), "attention": self.attention.clone(),
                    "bias": self.model.blocks[0].attn.edge_bias.detach().clone()},
                   f"{out}/rank{rank}_step{step}.pt")
        return stats

    schedule.Plasticity._apply = apply_and_dump
    _worker(rank, world, port, overrides, [f"{out}/run0", f"{out}/run1"])


@pytest.mark.parametrize("rule", ["set", "rigl"])
def test_learned_wiring_is_identical_on_every_rank(tmp_path, rule):
    """Prune / grow with 2 processes: after each of several updates both ranks hold the same
    edges, edge biases and attention statistics (rank 0 decides, all apply)."""
    overrides = BASE + [f"plasticity={rule}", "plasticity.every=2", "plasticity.stop=6"]
    mp.spawn(_plastic_worker, args=(2, free_port(), overrides, str(tmp_path)), nprocs=2,
             join=True)
    steps = sorted(int(f.stem.split("step")[1]) for f in tmp_path.glob("rank0_step*.pt"))
    assert len(steps) >= 2, steps
    changed = False
    for step in steps:
        a, b = (torch.load(tmp_path / f"rank{r}_step{step}.pt") for r in (0, 1))
        assert torch.equal(a["index"], b["index"]), step
        assert torch.equal(a["bias"], b["bias"]) and torch.allclose(a["attention"], b["attention"])
        changed |= not torch.equal(a["index"], torch.load(tmp_path / f"rank0_step{steps[0]}.pt")
                                   ["index"])
    assert changed  # the updates really rewired the sheet
    assert load_checkpoint(tmp_path / "run0")["step"] == 6


def _state_worker(rank: int, world: int, port: int, overrides: list, out: str) -> None:
    """A rank that saves its whole model state at every evaluation."""
    from colgraph.training import assembly

    real, calls = assembly.evaluate, []

    def evaluate_and_dump(model, *args, **kwargs):
        calls.append(1)
        torch.save({k: v for k, v in model.state_dict().items() if torch.is_tensor(v)},
                   f"{out}/rank{rank}_eval{len(calls)}.pt")
        return real(model, *args, **kwargs)

    assembly.evaluate = evaluate_and_dump
    _worker(rank, world, port, overrides, [f"{out}/run0", f"{out}/run1"])


def test_growing_sheet_with_learned_wiring_is_identical_on_every_rank(tmp_path):
    """Columns added mid-training (fresh random parameters) and edges pruned / grown: every
    parameter and buffer is the same on both ranks afterwards."""
    # dropout and unequal shares (64 / 63): the ranks' random streams differ, so only the
    # broadcast of rank 0's new parameters makes them agree
    overrides = (TINY + ["train.epochs=2", "train.max_steps=14", "scale.area=area1",
                         "model.dropout=0.1", "train.batch_size=127",
                         "scale.at_step=3", "plasticity=set", "plasticity.every=4"])
    mp.spawn(_state_worker, args=(2, free_port(), overrides, str(tmp_path)), nprocs=2,
             join=True)
    files = sorted(tmp_path.glob("rank0_eval*.pt"))
    assert len(files) == 2  # epoch 1 end and the stop at step 14
    for f in files:
        a, b = torch.load(f), torch.load(tmp_path / f.name.replace("rank0", "rank1"))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f.name
    before = torch.load(files[0])
    assert load_checkpoint(tmp_path / "run0")["step"] == 14
    assert before["columnformer.column_embed"].shape[0] > 8 * 8 + 4 * 4  # the sheet grew


@pytest.mark.parametrize("program, extra", [
    ("script", []),  # data parallel: torchrun --nproc_per_node=2 scripts/train.py ...
    ("module", ["parallel.columns=2"]),  # one sheet on 2 processes: ... -m colgraph train
])
def test_torchrun_runs_the_training_script(tmp_path, program, extra):
    """The commands the README gives, data parallel and column sharded."""
    root = CONFIG_DIR.parent
    target = ([str(root / "scripts" / "train.py")] if program == "script"
              else ["-m", "colgraph", "train"])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port", str(free_port()), *target, *BASE, *extra,
           f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes" in proc.stdout and proc.stdout.count("test accuracy") == 1
    state = load_checkpoint(tmp_path / "run")
    assert state["step"] == 6 and (state["shards"] is not None) == bool(extra)


def _stream_worker(rank: int, world: int, port: int, overrides: list, out: str) -> None:
    """A rank that saves its random generator and parameters before the first batch."""
    from colgraph.training import Hook

    class Record(Hook):
        def epoch_start(self, run):
            if run.state.step == 0:
                torch.save({"rng": torch.get_rng_state(),
                            "params": {k: v.detach().clone()
                                       for k, v in run.model.state_dict().items()
                                       if torch.is_tensor(v)}}, f"{out}/rank{rank}.pt")

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    train(compose(overrides), f"{out}/run{rank}", hooks=[Record()])


def test_each_rank_draws_its_own_dropout_masks(tmp_path):
    """Every rank starts from the same parameters, but the ranks' random streams (dropout,
    augmentation) differ; rank 0's is the one-process stream. So with dropout, 2 processes
    do not repeat 1 process (without it they do: the test above)."""
    overrides = BASE + ["model.dropout=0.2", "data.augment.flip=true"]
    mp.spawn(_stream_worker, args=(2, free_port(), overrides, str(tmp_path)), nprocs=2,
             join=True)
    (tmp_path / "one").mkdir()
    _stream_worker(0, 1, 0, overrides, str(tmp_path / "one"))
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    one = torch.load(tmp_path / "one" / "rank0.pt")
    assert all(torch.equal(a["params"][k], b["params"][k]) for k in a["params"])
    assert not torch.equal(a["rng"], b["rng"])
    assert torch.equal(a["rng"], one["rng"])
    two, single = (load_checkpoint(tmp_path / d)["model"] for d in ("run0", "one/run0"))
    assert max((two[k] - single[k]).abs().max().item() for k in two
               if torch.is_tensor(two[k]) and two[k].is_floating_point()) > 1e-4


def test_a_test_set_smaller_than_the_world_is_evaluated(tmp_path):
    """One test sample, two processes: rank 1's share of the test set is empty, and it still
    reaches every collective of the evaluation."""
    import numpy as np

    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(path, x=rng.random((60, 8, 8)).astype(np.float32), y=np.arange(60) % 3,
             x_test=rng.random((1, 8, 8)).astype(np.float32), y_test=np.array([1]))
    overrides = BASE + ["data=file", f"data.path={path}", "train.max_steps=2"]
    _spawn(overrides, [str(tmp_path / "run0"), str(tmp_path / "run1")])
    rows = list(csv.DictReader((tmp_path / "run0" / "metrics.csv").open()))
    assert len(rows) == 1 and float(rows[0]["test_acc"]) in (0.0, 1.0)
    assert float(rows[0]["test_loss"]) > 0


def test_migration_is_one_decision_applied_on_every_rank(tmp_path):
    """Columns migrate with 2 processes: both ranks hold the same positions afterwards
    (rank 0 decides from the global batch's attention, every rank applies the move)."""
    overrides = BASE + ["geometry.scramble=0", "migrate.every=2", "migrate.stop=6",
                        "migrate.method=anneal", "migrate.temperature=0.1", "model.dropout=0.1"]
    mp.spawn(_state_worker, args=(2, free_port(), overrides, str(tmp_path)), nprocs=2,
             join=True)
    a, b = (torch.load(tmp_path / f"rank{r}_eval1.pt") for r in (0, 1))
    key = "columnformer.edges.pos"
    assert torch.equal(a[key], b[key])
    from colgraph.geometry import build_geometry

    assert not torch.equal(a[key], build_geometry(compose(overrides).geometry).pos)  # moved
    rows = list(csv.DictReader((tmp_path / "run0" / "migration.csv").open()))
    assert [int(r["step"]) for r in rows] == [2, 4, 6] and float(rows[0]["moved_fraction"]) > 0
