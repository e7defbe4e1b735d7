import pytest
from omegaconf import OmegaConf

from colgraph.geometry import build_geometry, get_wiring


def test_unknown_geometry_lists_choices():
    cfg = OmegaConf.create({"name": "grd", "wiring": {"rule": "knn", "k": 4, "r": 1.0,
                                                      "self_loops": False}})
    with pytest.raises(ValueError, match="Unknown geometry 'grd'. Choices: grid, torus, stack"):
        build_geometry(cfg)


def test_unknown_wiring_lists_choices():
    with pytest.raises(ValueError, match="Unknown wiring rule 'nn'. Choices: knn, radius, full"):
        get_wiring("nn")
