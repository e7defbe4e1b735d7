"""The run state: position and random generators, saved and restored by one object."""
import random

import numpy as np
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
