import pytest
import torch

from colgraph import ColumnformerConfig
from colgraph.geometry import knn, stack
from colgraph.geometry import from_coords
from colgraph.config import TaskConfig
from colgraph.tasks import ImageClassification, InputMap

TASK = TaskConfig(name="classify_image")


def test_patches_land_retinotopically():
    # a 2x2 input area listed in scrambled order: slots must follow positions, not indices
    pos = torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    geo = from_coords(pos, knn(2), areas={"input": torch.arange(4)})
    order = InputMap.fit(geo, "input", (2, 2)).patch_of_slot
    # column 1 sits at (0,0) -> patch 0; column 2 at (1,0) -> patch 1; 3 -> 2; 0 -> 3
    assert order.tolist() == [3, 0, 1, 2]


def test_classifier_forward():
    geo = stack([4, 2], wiring=knn(5))
    model = ImageClassification(geo, ColumnformerConfig(channels=8, steps=2), TASK, (1, 8, 8), 10)
    res = model(torch.randn(3, 1, 8, 8), torch.tensor([0, 1, 9]))
    assert res.prediction.shape == (3, 10) and res.out.output.shape == (3, 4, 8)
    assert model.encoder.patch_size == 2  # fitted: 8x8 images onto a 4x4 input area
    assert res.loss.ndim == 0 and 0 <= int(res.stats["acc"]) <= 3


def test_patch_count_must_match_input_area():
    geo = stack([8, 4], wiring=knn(5))
    with pytest.raises(ValueError, match=r"4x4 = 16 patches.*'input' has 64 columns"):
        ImageClassification(geo, ColumnformerConfig(channels=8, steps=2),
                            TaskConfig(name="classify_image", patch_size=2), (1, 8, 8), 10)


def test_no_patch_size_fits_the_input_area():
    geo = stack([5, 2], wiring=knn(5))
    with pytest.raises(ValueError, match=r"No square patch size cuts 8x8 images into 25 patches"):
        ImageClassification(geo, ColumnformerConfig(channels=8, steps=2), TASK, (1, 8, 8), 10)


def test_wrong_sample_shape_is_refused():
    geo = stack([4, 2], wiring=knn(5))
    model = ImageClassification(geo, ColumnformerConfig(channels=8, steps=2), TASK, (1, 8, 8), 10)
    with pytest.raises(ValueError, match=r"expects samples of shape \[B, 1, 8, 8\], got \[3, 1, 8, 9\]"):
        model(torch.randn(3, 1, 8, 9), torch.zeros(3, dtype=torch.long))


def test_label_smoothing_known_answer_and_bad_values():
    geo = stack([4, 2], wiring=knn(5))
    cfg = ColumnformerConfig(channels=8, steps=2)
    smooth = ImageClassification(geo, cfg, TaskConfig(name="classify_image", label_smoothing=0.1),
                                 (1, 8, 8), 10).eval()
    x, y = torch.randn(3, 1, 8, 8), torch.tensor([0, 1, 9])
    res = smooth(x, y)
    logp = res.prediction.log_softmax(1)
    # targets 0.9 on the label + 0.1 spread evenly over all 10 classes
    expected = -(0.9 * logp[torch.arange(3), y] + 0.1 * logp.mean(1)).mean()
    assert torch.allclose(res.loss, expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"task.label_smoothing must be in \[0, 1\) \(got 1.0\)"):
        ImageClassification(geo, cfg, TaskConfig(name="classify_image", label_smoothing=1.0),
                            (1, 8, 8), 10)
