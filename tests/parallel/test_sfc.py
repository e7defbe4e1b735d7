"""The Hilbert curve behind partition(method="sfc")."""
import numpy as np
import pytest
import torch

from colgraph.parallel import hilbert_index, sfc_order


def _cells(d: int, bits: int) -> np.ndarray:
    axes = np.meshgrid(*[np.arange(2**bits)] * d, indexing="ij")
    return np.stack(axes, -1).reshape(-1, d)


@pytest.mark.parametrize("d, bits", [(2, 1), (2, 5), (3, 1), (3, 3), (4, 2)])
def test_hilbert_visits_every_cell_once_in_unit_steps(d, bits):
    cells = _cells(d, bits)
    key = hilbert_index(cells, bits)
    assert np.array_equal(np.sort(key), np.arange(cells.shape[0]))  # a bijection
    path = cells[np.argsort(key)]
    assert (np.abs(np.diff(path, axis=0)).sum(1) == 1).all()  # neighbours follow neighbours


def test_hilbert_bad_input():
    with pytest.raises(ValueError, match=r"D >= 2 \(got \[4, 1\]\)"):
        hilbert_index(np.zeros((4, 1), np.int64), 3)
    with pytest.raises(ValueError, match=r"D \* bits <= 63 \(got bits=32, D=2\)"):
        hilbert_index(np.zeros((4, 2), np.int64), 32)
    with pytest.raises(ValueError, match=r"in \[0, 7\] for bits=3 \(got min 0, max 8\)"):
        hilbert_index(np.array([[0, 8]]), 3)


def test_sfc_order_is_a_pure_function_of_shape_not_scale():
    pos = torch.rand(500, 2, generator=torch.Generator().manual_seed(1))
    order = sfc_order(pos)
    assert torch.equal(torch.sort(order).values, torch.arange(500))
    assert torch.equal(sfc_order(pos * 7.0 - 3.0), order)  # same bounding cube, same curve
    line = torch.tensor([[3.0], [1.0], [2.0]])
    assert sfc_order(line).tolist() == [1, 2, 0]  # 1-D: by coordinate


def test_sfc_order_high_dimensions_project_to_three():
    pos = torch.randn(300, 6, generator=torch.Generator().manual_seed(2))
    order = sfc_order(pos)
    assert torch.equal(sfc_order(pos), order)
    assert torch.equal(torch.sort(order).values, torch.arange(300))


def test_sfc_order_refuses_nan_and_bad_shapes():
    pos = torch.rand(5, 2)
    pos[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"finite positions; columns \[3\]"):
        sfc_order(pos)
    with pytest.raises(ValueError, match=r"shape \[N, D\] with N, D > 0 \(got \[0, 2\]\)"):
        sfc_order(torch.zeros(0, 2))
