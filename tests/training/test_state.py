"""The run state: position and random generators, saved and restored by one object."""
import random

import numpy as np
import pytest
import torch

from colgraph.training.state import RunState


def test_round_trip_restores_position_and_every_generator():
    state = RunState(epoch=3, step=70, batch=4, skipped=1)
    saved = state.state_dict()
    assert {"epoch", "step", "batch", "skipped", "rng"} <= set(saved)
    draws = (random.random(), float(np.random.rand()), float(torch.rand(())))
    restored = RunState()
    restored.load_state_dict(saved)
    assert (restored.epoch, restored.step, restored.batch, restored.skipped) == (3, 70, 4, 1)
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == draws


def test_older_checkpoints_without_batch_or_skipped_load():
    restored = RunState()
    restored.load_state_dict({"epoch": 2, "step": 46})
    assert (restored.epoch, restored.step, restored.batch, restored.skipped) == (2, 46, 0, 0)


def test_epoch_sums_round_trip_and_continue():
    """The current epoch's sums travel with the run state: a resumed epoch's means cover
    the batches before the stop as well."""
    state = RunState(epoch=1, step=17, batch=5)
    state.totals.add(torch.tensor(0.5), {"acc": torch.tensor(3.0)}, n=4)
    state.epoch_skipped = 1
    restored = RunState()
    restored.load_state_dict(state.state_dict())
    assert restored.totals.means("train_") == {"train_loss": 0.5, "train_acc": 0.75}
    assert restored.epoch_skipped == 1
    other = RunState()  # a rank other than 0: zeros under the same keys (reduced once)
    other.load_state_dict(state.state_dict(), main=False)
    assert other.totals.sums == {"loss": 0.0, "acc": 0.0} and other.totals.n == 0


def test_older_checkpoint_mid_epoch_without_sums_warns():
    with pytest.warns(UserWarning, match="predates saved epoch sums.*after batch 5"):
        RunState().load_state_dict({"epoch": 0, "step": 5, "batch": 5})


GOOD = {"epoch": 1, "step": 20, "batch": 4, "skipped": 0,
        "totals": {"sums": {"loss": 1.0}, "n": 512, "skipped": 0}}


@pytest.mark.parametrize("edit, match", [
    ({"epoch": -3}, r"The checkpoint's epoch=-3 is invalid: expected an integer >= 0"),
    ({"step": 2.5}, r"The checkpoint's step=2.5 is invalid"),
    ({"batch": True}, r"The checkpoint's batch=True is invalid"),
    ({"skipped": "3"}, r"The checkpoint's skipped='3' is invalid"),
    ({"batch": 10 ** 6}, r"The checkpoint's batch=1000000 is invalid: expected at most 12"),
    ({"step": 10 ** 9}, r"The checkpoint's step=1000000000 is invalid: expected at most 2874"),
    ({"epoch": 5}, r"The checkpoint's epoch=5 is invalid: expected at most train.epochs=2.*"
                   r"train.epochs >= 5"),
    ({"epoch": 2}, r"The checkpoint's batch=4 is invalid: expected 0 at epoch 2"),
    ({"totals": {"sums": {"loss": float("nan")}, "n": 1, "skipped": 0}},
     r"The checkpoint's totals.sums=.* finite floats"),
    ({"totals": {"sums": {}, "n": -1, "skipped": 0}}, r"The checkpoint's totals.n=-1"),
    ({"totals": {"sums": {}, "n": 10 ** 6, "skipped": 0}}, r"totals.n=1000000 .* at most 1437"),
    ({"totals": {"sums": {}, "n": 1, "skipped": 9}}, r"totals.skipped=9 .* at most batch=4"),
    ({"totals": [1, 2]}, r"The checkpoint's totals.sums=None"),
    ({"totals": {"sums": {"surprise": 1.0}, "n": 1, "skipped": 0}},
     r"The checkpoint's totals.sums=\['surprise'\] is invalid: expected sums of loss, acc only"),
])
def test_impossible_counters_are_refused(edit, match):
    from colgraph.training.state import check_position

    bounds = dict(steps_per_epoch=12, epochs=2, samples=1437, keys=("loss", "acc"))
    check_position(GOOD, **bounds)  # the unedited one
    with pytest.raises(ValueError, match=match):
        check_position({**GOOD, **edit}, **bounds)


def test_load_state_dict_checks_the_counters():
    with pytest.raises(ValueError, match=r"The checkpoint's epoch=-3 is invalid"):
        RunState().load_state_dict({**GOOD, "epoch": -3})
    with pytest.raises(ValueError, match=r"The checkpoint's step=None .*missing"):
        RunState().load_state_dict({"epoch": 0})
