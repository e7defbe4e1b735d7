import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from colgraph.data import iterate_batches, load_data


def task_cfg(**kw):
    base = {"name": "digits", "path": None, "root": "data", "download": False,
            "test_fraction": 0.2, "split_seed": 0, "patch_size": 1}
    return OmegaConf.create({**base, **kw})


def test_digits_fixed_split():
    a, b = load_data(task_cfg()), load_data(task_cfg())
    assert a.x_train.shape == (1437, 1, 8, 8) and a.x_test.shape == (360, 1, 8, 8)
    assert torch.equal(a.y_test, b.y_test) and a.num_classes == 10
    assert abs(float(a.x_train.mean())) < 1e-4  # standardised with train statistics


@pytest.mark.parametrize("suffix", [".pt", ".npz"])
def test_user_file(tmp_path, suffix):
    x = np.random.rand(50, 4, 4).astype(np.float32)
    y = np.arange(50) % 3
    path = tmp_path / f"data{suffix}"
    if suffix == ".pt":
        torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, path)
    else:
        np.savez(path, x=x, y=y)
    data = load_data(task_cfg(name="file", path=str(path)))
    assert data.image_shape == (1, 4, 4) and data.num_classes == 3
    assert len(data.x_train) + len(data.x_test) == 50


def test_user_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Data file not found"):
        load_data(task_cfg(name="file", path=str(tmp_path / "nope.pt")))
    np.savez(tmp_path / "bad.npz", images=np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match=r"lacks \['x', 'y'\]"):
        load_data(task_cfg(name="file", path=str(tmp_path / "bad.npz")))
    with pytest.raises(ValueError, match="task.path"):
        load_data(task_cfg(name="file"))


def test_unknown_task_lists_choices():
    with pytest.raises(ValueError, match="Unknown task 'digit'. Choices: digits, file, mnist"):
        load_data(task_cfg(name="digit"))


def test_iterate_batches_covers_everything():
    x, y = torch.arange(10).float(), torch.arange(10)
    seen = torch.cat([yb for _, yb in iterate_batches(x, y, 3, shuffle=True,
                                                      generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10))
