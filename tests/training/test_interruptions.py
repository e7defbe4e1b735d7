"""A run stopped by a signal (SIGKILL, SIGTERM, Ctrl-C) resumes to the logs of a run that
never stopped; an edited checkpoint's counters are refused."""
import csv
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from colgraph.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from colgraph.training import train

from conftest import TINY, compose

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
# plasticity rows at steps 3, 6, 9, ...; a mid-epoch checkpoint at step 8 (12 per epoch)
LOGGED = TINY + ["plasticity=set", "plasticity.every=3", "train.checkpoint_every=8"]

KILLER = """
import os, signal, sys
from conftest import compose
from colgraph.training import Hook, train

class Kill(Hook):  # runs after metrics.csv got epoch 1's row, before its checkpoint
    def epoch_end(self, run, metrics):
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))

train(compose(sys.argv[3:]), sys.argv[2], hooks=[Kill()])
"""


def _rows(path):
    """A log's rows without the wall-clock column."""
    return [{k: v for k, v in r.items() if k != "time"} for r in csv.DictReader(path.open())]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The runs made here are compared bit for bit with runs of this module's subprocesses
    (one thread each, _env): float sums depend on the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    run = tmp_path_factory.mktemp("straight")
    train(compose(LOGGED), run)
    return run


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_to_the_logs_of_one_that_never_stopped(tmp_path, straight, sig):
    """Killed at the end of epoch 1, after its metrics row and plasticity rows 9 and 12 were
    written but before its checkpoint: the resume from the step-8 checkpoint drops those
    rows, carries the sums of batches 1-8, and ends with the uninterrupted run's logs."""
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", KILLER, sig, str(run), *LOGGED],
                          env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -getattr(signal, sig), proc.stderr[-2000:]
    ckpt = load_checkpoint(run)
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (0, 8, 8)
    assert [r["epoch"] for r in _rows(run / "metrics.csv")] == ["1"]  # the orphan row
    assert [r["step"] for r in _rows(run / "plasticity.csv")] == ["3", "6", "9", "12"]
    train(compose(LOGGED + [f"train.resume={run}"]), run)
    for name in ("metrics.csv", "plasticity.csv"):
        assert _rows(run / name) == _rows(straight / name), name
    assert load_checkpoint(run)["step"] == 24


def test_resume_into_a_new_directory_truncates_the_copied_logs(tmp_path, straight):
    """A checkpoint older than the logs beside it (the run went on after it): the copy in
    the new directory holds the rows up to the checkpoint only, then the resumed ones."""
    part = tmp_path / "part"
    train(compose(LOGGED + ["train.max_steps=8"]), part)
    ckpt = load_checkpoint(part)
    train(compose(LOGGED + ["train.max_steps=14"]), part / "later")  # unrelated
    (part / "plasticity.csv").write_text((part / "plasticity.csv").read_text()
                                         + "0,99,1,1,0\n0,100,1")  # rows after it, torn
    del ckpt["path"]
    save_checkpoint(part / CHECKPOINT_NAME, ckpt)
    train(compose(LOGGED + [f"train.resume={part}"]), tmp_path / "new")
    for name in ("metrics.csv", "plasticity.csv"):
        assert _rows(tmp_path / "new" / name) == _rows(straight / name), name


def test_ctrl_c_saves_says_how_to_resume_and_exits_130(tmp_path):
    """SIGINT at step 5: a checkpoint at that batch, no traceback, exit status 130 and the
    command that continues the run, which ends with the uninterrupted run's logs."""
    base = TINY + ["train.epochs=1"]
    straight = tmp_path / "straight"
    train(compose(base), straight)
    script = """
import os, signal, sys
from colgraph.training import Hook, assembly
from colgraph.cli import train

class CtrlC(Hook):
    def after_step(self, run, result):
        if run.state.step == 5:
            os.kill(os.getpid(), signal.SIGINT)

real = assembly.default_hooks
assembly.default_hooks = lambda run, callbacks=(), hooks=(): real(run, callbacks, [CtrlC()])
train(sys.argv[1:])
"""
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", script, *base, f"hydra.run.dir={run}"],
                          env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "Interrupted (Ctrl-C) at step 5, after batch 5 of 12 of epoch 1" in proc.stderr
    ckpt = load_checkpoint(run)
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (0, 5, 5)
    command = proc.stderr.split("Resume with\n")[1].strip().splitlines()[0]
    args = shlex.split(command)
    assert args[:4] == ["python", "-m", "colgraph", "train"]
    assert f"train.resume={run / CHECKPOINT_NAME}" in args and f"hydra.run.dir={run}" in args
    assert "train.epochs=1" in args and "model.channels=16" in args
    done = subprocess.run([sys.executable, *args[1:]], env=_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _rows(run / "metrics.csv") == _rows(straight / "metrics.csv")


def test_edited_counters_are_refused_on_resume(tmp_path):
    train(compose(TINY + ["train.max_steps=1"]), tmp_path)
    state = load_checkpoint(tmp_path)
    del state["path"]
    for key, value, match in (("step", 10 ** 9, r"The checkpoint's step=1000000000 is invalid"),
                              ("batch", 10 ** 6, r"The checkpoint's batch=1000000 is invalid"),
                              ("epoch", -3, r"The checkpoint's epoch=-3 is invalid")):
        save_checkpoint(tmp_path / CHECKPOINT_NAME, {**state, key: value})
        with pytest.raises(ValueError, match=match):
            train(compose(TINY + [f"train.resume={tmp_path}"]), tmp_path)


def _scalars(run):
    """Each TensorBoard tag's steps as TensorBoard shows them (a resumed run's purge
    applied), and the number of points per (tag, step)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_after_a_crash_and_resume_equals_a_run_that_never_stopped(tmp_path):
    """Killed after epoch 1's points (steps up to 12) went to TensorBoard, resumed from the
    step-8 checkpoint: every tag holds each step once, the steps of a run that never
    stopped (without the purge, steps 9-12 appear twice)."""
    tensorboard = pytest.importorskip("tensorboard", reason="TensorBoard is optional "
                                      "(pip install colgraph[tensorboard])")
    logged = LOGGED + ["train.tensorboard=true"]
    straight = tmp_path / "straight"
    train(compose(logged), straight)
    run = tmp_path / "run"
    env = _env()
    env["PYTHONPATH"] += os.pathsep + str(Path(tensorboard.__file__).parents[1])
    proc = subprocess.run([sys.executable, "-c", KILLER, "SIGKILL", str(run), *logged],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    crashed = _scalars(run)
    assert crashed["train/loss_step"] == list(range(1, 13))  # up to epoch 1's end, step 12
    assert crashed["plasticity/edges"] == [3, 6, 9, 12]
    train(compose(logged + [f"train.resume={run}"]), run)
    resumed, expected = _scalars(run), _scalars(straight)
    assert expected["train/loss_step"] == list(range(1, 25))
    assert expected["test_acc"] == [12, 24]
    assert expected["plasticity/edges"] == [3, 6, 9, 12, 15, 18]
    assert resumed == expected


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WORKER = """
import os, signal, sys
from colgraph.training import Hook, assembly
from colgraph.cli import train

WHO = sys.argv[1]  # the ranks that get Ctrl-C (hydra replaces sys.argv)

class CtrlC(Hook):  # SIGINT to this process after step 3
    def after_step(self, run, result):
        if run.state.step == 3 and str(run.ranks.rank) in WHO:
            os.kill(os.getpid(), signal.SIGINT)

real = assembly.default_hooks
assembly.default_hooks = lambda run, callbacks=(), hooks=(): real(run, callbacks, [CtrlC()])
train(sys.argv[2:])
"""


@pytest.mark.parametrize("ranks", ["1", "01"])
def test_ctrl_c_on_some_rank_stops_every_rank_after_the_same_batch(tmp_path, ranks):
    """Two processes (gloo, the environment torchrun gives each): Ctrl-C on rank 1 only, or
    on both, after step 3. Every rank stops after batch 4 (the next step's all-reduce carries
    the flag), rank 0 saves there, each exits with status 130, and the message with the
    torchrun command that resumes comes once."""
    run = tmp_path / "run"
    port = _free_port()
    args = TINY + ["train.epochs=1", "optim.warmup_epochs=0", f"hydra.run.dir={run}"]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, ranks, *args], cwd=tmp_path,
                              env={**_env(), "RANK": str(r), "LOCAL_RANK": str(r),
                                   "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
                                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [130, 130], [o[1][-2000:] for o in outs]
    text = "".join(o + e for o, e in outs)
    assert "Traceback" not in text
    assert text.count("Interrupted (Ctrl-C) at step 4, after batch 4 of 12 of epoch 1") == 1
    assert "Interrupted" in outs[0][1]  # rank 0's stderr
    ckpt = load_checkpoint(run)
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (0, 4, 4)
    command = outs[0][1].split("Resume with\n")[1].strip().splitlines()[0]
    args = shlex.split(command)
    assert args[:4] == ["torchrun", "--nproc_per_node=2", "-m", "colgraph"]
    assert f"train.resume={run / CHECKPOINT_NAME}" in args and f"hydra.run.dir={run}" in args
    if ranks == "01":  # the printed command finishes the run
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run",
                               f"--master_port={_free_port()}", *args[1:]], env=_env(), cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert [(r["epoch"], r["step"]) for r in _rows(run / "metrics.csv")] == [("1", "12")]
