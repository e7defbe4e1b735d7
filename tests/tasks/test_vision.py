import pytest
import torch

from colgraph import ColumnformerConfig
from colgraph.geometry import Geometry, knn, stack
from colgraph.geometry import from_coords
from colgraph.tasks import VisionClassifier, retinotopic_order


def test_patches_land_retinotopically():
    # a 2x2 input area listed in scrambled order: slots must follow positions, not indices
    pos = torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    geo = from_coords(pos, knn(2), areas={"input": torch.arange(4)})
    order = retinotopic_order(geo, "input")
    # column 1 sits at (0,0) -> patch 0; column 2 at (1,0) -> patch 1; 3 -> 2; 0 -> 3
    assert order.tolist() == [3, 0, 1, 2]


def test_classifier_forward():
    geo = stack([4, 2], wiring=knn(5))
    model = VisionClassifier(geo, ColumnformerConfig(channels=8, steps=2), (1, 8, 8), 2, 10)
    logits, out = model(torch.randn(3, 1, 8, 8))
    assert logits.shape == (3, 10) and out.output.shape == (3, 4, 8)


def test_patch_count_must_match_input_area():
    geo = stack([8, 4], wiring=knn(5))
    with pytest.raises(ValueError, match=r"4x4 = 16 patches.*'input' has 64 columns"):
        VisionClassifier(geo, ColumnformerConfig(channels=8, steps=2), (1, 8, 8), 2, 10)
