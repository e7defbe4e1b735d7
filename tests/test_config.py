"""Every YAML shipped in configs/ composes and builds what it describes."""

import pytest
import torch

from colgraph.geometry import build_geometry
from colgraph.training import build_model

from conftest import CONFIG_DIR, compose

SAMPLE_SHAPES = {"digits": (1, 8, 8), "file": (1, 8, 8), "mnist": (1, 28, 28),
                 "cifar10": (3, 32, 32), "waves": (1, 64)}


def group_options():
    for group_dir in sorted(p for p in CONFIG_DIR.iterdir() if p.is_dir()):
        for yaml in sorted(group_dir.glob("*.yaml")):
            yield group_dir.name, yaml.stem


ROOT = CONFIG_DIR.parent
# options that only make sense together with another group's option
SEQUENCE = ["data=waves", "geometry=line"]
PARTNERS = {("data", "mnist"): ["+experiment=mnist_stack"],
            ("data", "waves"): ["task=classify_sequence", "geometry=line"],
            ("task", "classify_sequence"): SEQUENCE,
            ("task", "predict_sequence"): SEQUENCE + ["model.steps=3", "geometry.n=16"],
            ("geometry", "graph"): [f"geometry.path={ROOT / 'examples' / 'two_areas.graphml'}"]}


@pytest.mark.parametrize("group,option", list(group_options()), ids=lambda v: str(v))
def test_config_composes_and_builds(group, option):
    key = f"+{group}={option}" if group == "experiment" else f"{group}={option}"
    cfg = compose([key, *PARTNERS.get((group, option), [])])
    geometry = build_geometry(cfg.geometry)
    shape = SAMPLE_SHAPES[cfg.data.name]
    model = build_model(cfg, geometry, shape, 10)
    res = model(torch.randn(2, *shape), torch.zeros(2, dtype=torch.long))
    assert torch.isfinite(res.loss) and res.prediction.size(0) == 2
    assert len(res.out.attention) == cfg.model.steps


def test_all_config_groups_have_options():
    groups = {g for g, _ in group_options()}
    assert {"geometry", "model", "task", "data", "optim", "train", "experiment"} <= groups


def test_typo_in_override_fails_at_compose_time():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose(["model.chanels=8"])


GEOMETRY_OPTIONS = sorted(p.stem for p in (CONFIG_DIR / "geometry").glob("*.yaml"))


@pytest.mark.parametrize("option", GEOMETRY_OPTIONS)
def test_every_geometry_config_trains(tmp_path, option):
    from colgraph.training import load_checkpoint, train

    cfg = compose([f"geometry={option}", *PARTNERS.get(("geometry", option), []),
                   "model.channels=8", "train.max_steps=2", "train.batch_size=32",
                   "train.progress=false", "train.tensorboard=false", "device=cpu"])
    metrics = train(cfg, tmp_path)
    assert load_checkpoint(tmp_path)["step"] == 2 and metrics["wiring_length"] > 0
