import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from colgraph.data import iterate_batches, load_data


def data_cfg(**kw):
    base = {"name": "digits", "path": None, "root": "data", "download": False,
            "test_fraction": 0.2, "split_seed": 0}
    return OmegaConf.create({**base, **kw})


def test_digits_fixed_split():
    a, b = load_data(data_cfg()), load_data(data_cfg())
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
    data = load_data(data_cfg(name="file", path=str(path)))
    assert data.sample_shape == (1, 4, 4) and data.num_classes == 3
    assert len(data.x_train) + len(data.x_test) == 50


def test_user_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Data file not found"):
        load_data(data_cfg(name="file", path=str(tmp_path / "nope.pt")))
    np.savez(tmp_path / "bad.npz", images=np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match=r"lacks \['x', 'y'\]"):
        load_data(data_cfg(name="file", path=str(tmp_path / "bad.npz")))
    with pytest.raises(ValueError, match="data.path"):
        load_data(data_cfg(name="file"))


def test_unknown_data_set_lists_choices():
    with pytest.raises(ValueError, match="Unknown data set 'digit'. Choices: digits, file, mnist"):
        load_data(data_cfg(name="digit"))


def test_iterate_batches_covers_everything():
    x, y = torch.arange(10).float(), torch.arange(10)
    seen = torch.cat([yb for _, yb in iterate_batches(x, y, 3, shuffle=True,
                                                      generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10))


def test_file_samples_are_shaped_for_the_task(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.random.rand(40, 3, 12).astype(np.float32),
             y=np.arange(40) % 2)
    cfg = data_cfg(name="file", path=str(tmp_path / "d.npz"))
    assert load_data(cfg, "sequence").sample_shape == (3, 12)  # [M, C, L]
    assert load_data(cfg, "image").sample_shape == (1, 3, 12)  # [M, H, W]
    seq = load_data(cfg, "sequence").x_train
    assert torch.allclose(seq.mean((0, 2)), torch.zeros(3), atol=1e-5)  # per channel


def test_image_data_refused_for_a_sequence_task():
    with pytest.raises(ValueError, match="data=digits holds images but the task reads sequences"):
        load_data(data_cfg(), "sequence")
