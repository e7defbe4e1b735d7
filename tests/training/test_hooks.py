"""Step and epoch hooks: the contract the loop keeps."""
import torch

from colgraph.training import Hook, train

from conftest import TINY, compose


class Recorder(Hook):
    def __init__(self):
        self.events = []

    def epoch_start(self, run):
        self.events.append(("epoch_start", run.state.epoch, run.state.batch))

    def before_step(self, run):
        self.events.append(("before_step", run.state.step))

    def after_step(self, run, result):
        assert torch.isfinite(result.loss)
        self.events.append(("after_step", run.state.step))

    def epoch_end(self, run, metrics):
        self.events.append(("epoch_end", metrics["epoch"], "test_acc" in metrics))

    def run_end(self, run, metrics):
        self.events.append(("run_end", metrics["checkpoint"] == str(run.checkpoint_path)))


def test_hooks_see_every_step_and_epoch_in_order(tmp_path):
    rec = Recorder()
    train(compose(TINY + ["train.epochs=2", "train.eval_every=2"]), tmp_path, hooks=[rec])
    steps = 12  # 1437 samples / 128 per batch, per epoch
    assert rec.events[0] == ("epoch_start", 0, 0)
    assert rec.events[1:1 + 2 * steps:2] == [("before_step", s) for s in range(steps)]
    assert rec.events[2:2 + 2 * steps:2] == [("after_step", s) for s in range(1, steps + 1)]
    ends = [e for e in rec.events if e[0] in ("epoch_end", "run_end")]
    assert ends == [("epoch_end", 1, False), ("epoch_end", 2, True), ("run_end", True)]


def test_a_hook_can_stop_the_run_and_its_changes_are_checkpointed(tmp_path):
    """Hooks run before the checkpoint hook: what they set is what the checkpoint holds."""
    from colgraph.checkpoint import load_checkpoint

    class StopAfterFirstEpoch(Hook):
        def epoch_end(self, run, metrics):
            run.state.done = True

    metrics = train(compose(TINY + ["train.epochs=3"]), tmp_path, hooks=[StopAfterFirstEpoch()])
    assert metrics["epoch"] == 1 and load_checkpoint(tmp_path)["epoch"] == 1


def test_a_hook_that_reshapes_parameters_is_followed_by_a_rewrap(tmp_path, monkeypatch):
    """after_step returning True re-wraps the model once (the DDP seam), after all hooks."""
    from colgraph.distributed import Distributed

    wraps = []
    real = Distributed.wrap
    monkeypatch.setattr(Distributed, "wrap", lambda self, m: wraps.append(1) or real(self, m))

    class Reshapes(Hook):
        def after_step(self, run, result):
            return run.state.step == 3

    train(compose(TINY + ["train.max_steps=5"]), tmp_path, hooks=[Reshapes(), Reshapes()])
    assert len(wraps) == 2  # once at the start, once after step 3 (not once per hook)


def test_the_construction_geometry_is_recorded_once_per_run(tmp_path, monkeypatch):
    """Eight checkpoints (every 3 steps and at each epoch's end), one fingerprint and one
    geometry state: the sheet a run was built on never changes; every checkpoint holds it."""
    from colgraph.checkpoint import load_checkpoint
    from colgraph.geometry import Geometry
    from colgraph.training import hooks

    calls, saves = [], []
    for name in ("fingerprint", "state_dict"):
        real = getattr(Geometry, name)
        monkeypatch.setattr(Geometry, name, lambda self, real=real, name=name: (
            calls.append(name), real(self))[1])
    real_save = hooks.save_checkpoint
    monkeypatch.setattr(hooks, "save_checkpoint", lambda path, state: (
        saves.append(state["geometry_fingerprint"]), real_save(path, state)))
    train(compose(TINY + ["train.checkpoint_every=3"]), tmp_path)
    assert sorted(calls) == ["fingerprint", "state_dict"] and len(saves) == 8
    ckpt = load_checkpoint(tmp_path)
    assert set(saves) == {ckpt["geometry_fingerprint"]}
    assert ckpt["geometry_fingerprint"] == Geometry.from_state_dict(ckpt["geometry"]).fingerprint()
