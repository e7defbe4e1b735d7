from __future__ import annotations

from pathlib import Path

import os

from colgraph.allocator import active_allocator, tune_allocator
from colgraph.process import tune_threads

tune_threads()  # as colgraph's own commands do, before torch loads: idle threads sleep soon
tune_allocator()  # and before the first tensor (faster steps)
# runs made in this process and by the commands the tests start use ONE allocator (matmul
# kernels may take another path for memory of another alignment, so runs compared bit for
# bit could differ): the commands keep this process's (inherited, if it was preloaded).
# The tests of colgraph.allocator and of the commands' default unset this.
os.environ.setdefault("COLGRAPH_ALLOCATOR", active_allocator())

import pytest  # noqa: E402
import torch  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def compose(overrides: list[str] | None = None):
    """Compose the project's hydra config with overrides (as scripts/train.py would)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from colgraph.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides or [])


def free_port() -> int:
    """A free TCP port on this machine (for a process group's MASTER_PORT)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fit(model, optimizer, shape: tuple[int, ...], steps: int) -> None:
    """``steps`` updates of a bare Columnformer on random tokens of ``shape``; the loss
    (output power plus attention power) gives every parameter, the per-edge bias included, a
    gradient."""
    for _ in range(steps):
        out = model(torch.randn(*shape))
        loss = out.output.pow(2).mean() + sum(a.pow(2).sum() for a in out.attention)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


# a small, fast configuration of the main job for end-to-end tests
TINY = ["geometry.widths=[8,4]", "geometry.wiring.k=6", "model.channels=16", "model.steps=2",
        "model.heads=1", "model.value_proj=false", "model.dropout=0",
        "train.epochs=2", "train.batch_size=128", "train.progress=false",
        "train.tensorboard=false", "device=cpu"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
