"""Data-parallel training: 2 CPU processes (gloo) follow a 1-process run with the same
global batch; only rank 0 writes; a 2-process checkpoint resumes in 1 process."""
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from colgraph.training import load_checkpoint, train

from conftest import CONFIG_DIR, TINY, compose

BASE = TINY + ["train.epochs=1", "train.max_steps=6", "optim.warmup_epochs=0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, overrides: list, run_dirs: list) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    train(compose(overrides), run_dirs[rank])


def _spawn(overrides, run_dirs, world=2):
    mp.spawn(_worker, args=(world, _free_port(), overrides, run_dirs), nprocs=world, join=True)


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


def test_learned_wiring_is_refused_with_several_processes(tmp_path):
    with pytest.raises(Exception, match="not supported with several processes yet"):
        _spawn(BASE + ["plasticity=set"], [str(tmp_path / "a"), str(tmp_path / "b")])


def test_torchrun_runs_the_training_script(tmp_path):
    """The command the README gives: torchrun --nproc_per_node=2 scripts/train.py ..."""
    root = CONFIG_DIR.parent
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port", str(_free_port()), str(root / "scripts" / "train.py"), *BASE,
           f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes" in proc.stdout and proc.stdout.count("test accuracy") == 1
    assert load_checkpoint(tmp_path / "run")["step"] == 6
