"""Every YAML shipped in configs/ composes and builds what it describes."""

import pytest
import torch

from colgraph.geometry import build_geometry
from colgraph.restore import build_model

from conftest import CONFIG_DIR, TINY, compose

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
    # geometry: keys no registered option has, and wrong types, fail at compose time too
    for typo in ("geometry.widthz=3", "geometry.wiring.kk=3", "geometry.n=abc"):
        with pytest.raises(ConfigCompositionException):
            compose([typo])


GEOMETRY_OPTIONS = sorted(p.stem for p in (CONFIG_DIR / "geometry").glob("*.yaml"))


@pytest.mark.parametrize("option", GEOMETRY_OPTIONS)
def test_every_geometry_config_trains(tmp_path, option):
    from colgraph.checkpoint import load_checkpoint
    from colgraph.training import train

    cfg = compose([f"geometry={option}", *PARTNERS.get(("geometry", option), []),
                   "model.channels=8", "train.max_steps=2", "train.batch_size=32",
                   "train.progress=false", "train.tensorboard=false", "device=cpu"])
    metrics = train(cfg, tmp_path)
    assert load_checkpoint(tmp_path)["step"] == 2 and metrics["wiring_length"] > 0


# every bad setting is refused by validate_config (run first thing in train) with a
# message naming the key, what it must be and what arrived
BAD_SETTINGS = [
    (["train.epochs=-1"], r"train.epochs and train.batch_size must be >= 1 \(got -1"),
    (["train.epochs=0"], r"train.epochs and train.batch_size must be >= 1 \(got 0"),
    (["train.batch_size=0"], r"train.batch_size must be >= 1 \(got 2, 0\)"),
    (["train.eval_every=0"], r"train.eval_every must be >= 1 epoch \(got 0\)"),
    (["train.max_steps=0"], r"train.max_steps must be >= 1 or null"),
    (["data.test_fraction=1.5"], r"data.test_fraction must be in \(0, 1\) \(got 1.5\)"),
    (["model.mlp_ratio=0"], r"model.mlp_ratio must be a finite number > 0 \(got 0.0\)"),
    (["model.mlp_ratio=0.01"], r"model.mlp_ratio must be >= 1 / model.channels"),
    (["model.qk_dim=0"], r"model.qk_dim must be >= 1 or null"),
    (["model.bias_sigma=0"], r"model.bias_sigma must be > 0 or null"),
    (["model.bias_clamp=-1"], r"model.bias_clamp must be a finite number >= 0"),
    (["model.backend=fast"], r"model.backend must be one of sparse, pyg, dense"),
    (["optim.grad_clip=-1"], r"optim.grad_clip must be a finite number >= 0 \(got -1.0\)"),
    (["optim.weight_decay=-1"], r"optim.weight_decay must be a finite number >= 0"),
    (["optim.warmup_epochs=-1"], r"optim.warmup_epochs must be a finite number >= 0"),
    (["optim.lr=inf"], r"optim.lr must be a finite number > 0 \(got inf\)"),
    (["optim.lr=0"], r"optim.lr must be a finite number > 0"),
    (["optim.betas=[0.9,1.5]"], r"optim.betas must be two numbers in \[0, 1\)"),
    (["optim.min_lr_ratio=2"], r"optim.min_lr_ratio must be in \[0, 1\]"),
    (["wiring_cost.weight=-5"], r"wiring_cost.weight must be a finite number >= 0 \(got -5.0\)"),
    (["wiring_cost.weight=nan"], r"wiring_cost.weight must be a finite number >= 0 \(got nan\)"),
    (["task.label_smoothing=1"], r"task.label_smoothing must be in \[0, 1\)"),
    (["task.mask_ratio=0"], r"task.mask_ratio must be in \(0, 1\)"),
    (["task.patch_size=0"], r"task.patch_size must be >= 1 or null"),
    (["data.augment.shift=-2"], r"data.augment.shift must be >= 0"),
    (["+train.epochz=2"], r"Unknown key\(s\) train.epochz. Choices: batch_size, "),
    (["+optim.learning_rate=0.1"], r"Unknown key\(s\) optim.learning_rate. Choices: betas"),
    (["+geometry.wiring.m=3"], r"Unknown key\(s\) geometry.wiring.m. Choices: k, lam"),
    (["+foo=1"], r"Unknown top-level key\(s\) foo"),
    (["device=bogus"], r"device must be auto, cpu, cuda or cuda:<index> \(got 'bogus'\)"),
    (["geometry=grid", "geometry.widths=[4,4]"],
     r"geometry.widths=\[4, 4\] does not apply to geometry=grid \(its settings: width, height"),
    (["geometry.width=5"], r"geometry.width=5 does not apply to geometry=stack"),
    (["geometry.wiring.k=0"], r"geometry.wiring.k must be >= 1 .*Raise geometry.wiring.k"),
    (["geometry.wiring.r=3"], r"geometry.wiring.r=3.0 does not apply to geometry.wiring.rule=knn"),
    (["geometry.wiring.rule=ring"], r"geometry.wiring.rule must be one of knn, radius"),
    (["geometry.widths=[8,0]"], r"geometry.widths must be a non-empty list of integers >= 1"),
    (["geometry.wiring.rule=none"], r"rule=none gives geometry=stack no edges"),
    (["geometry=graph", "geometry.wiring.self_loops=true"], r"self_loops=true needs a rule"),
]


@pytest.mark.parametrize("overrides,match", BAD_SETTINGS, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else "")
def test_bad_settings_are_refused_before_any_work(overrides, match):
    from colgraph.config import validate_config

    base = [o for o in TINY if not o.startswith("geometry.widths")]  # the stack default
    with pytest.raises(ValueError, match=match):
        validate_config(compose(base + overrides))


def test_train_validates_before_loading_data(tmp_path, monkeypatch):
    """train() refuses a bad setting before the run directory, data or model exist."""
    from colgraph import training
    from colgraph.training import assembly

    monkeypatch.setattr(assembly, "load_task_data", lambda cfg: pytest.fail("data loaded"))
    with pytest.raises(ValueError, match="The config has 2 problems:\n  - optim.grad_clip"):
        training.train(compose(TINY + ["optim.grad_clip=-1", "train.eval_every=0"]),
                       tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_every_shipped_config_validates():
    """Each YAML option of every group (and each experiment) passes validation."""
    from colgraph.config import validate_config

    for group, option in group_options():
        overrides = ([f"+experiment={option}"] if group == "experiment"
                     else [f"{group}={option}", *PARTNERS.get((group, option), [])])
        validate_config(compose(overrides))


@pytest.mark.parametrize("kwargs,error,match", [
    ({"channels": "32"}, TypeError, r"model.channels must be int \(got '32' of type str\)"),
    ({"steps": 2.5}, TypeError, r"model.steps must be int \(got 2.5"),
    ({"recompute": 1}, TypeError, r"model.recompute must be bool"),
    ({"mlp_ratio": -1.0}, ValueError, r"model.mlp_ratio must be a finite number > 0"),
    ({"qk_dim": 0}, ValueError, r"model.qk_dim must be >= 1"),
    ({"bias_sigma": -1.0}, ValueError, r"model.bias_sigma must be > 0"),
    ({"bias_clamp": -0.5}, ValueError, r"model.bias_clamp must be a finite number >= 0"),
])
def test_python_api_checks_types_and_ranges(kwargs, error, match):
    from colgraph import ColumnformerConfig

    with pytest.raises(error, match=match):
        ColumnformerConfig(**kwargs)


def test_columnformer_refuses_bad_geometry_and_tokens():
    import numpy as np

    from colgraph import Columnformer
    from colgraph.geometry import grid, knn

    with pytest.raises(TypeError, match="needs a colgraph Geometry .*got str"):
        Columnformer("grid")
    model = Columnformer(grid(4, wiring=knn(4)), channels=8, steps=2)
    good = torch.randn(2, 16, 8)
    for bad, match in ((good.numpy(), "floating-point torch.Tensor .*got ndarray"),
                       (good.long(), "got a torch.int64 tensor"),
                       (good.double(), "tokens are torch.float64 but the model is torch.float32"),
                       (good[:0], "Empty batch")):
        with pytest.raises((TypeError, ValueError), match=match):
            model(bad)
    assert np.isfinite(model(good).state.detach().numpy()).all()


def test_geometry_schema_covers_every_registered_option():
    """Hydra composes geometry (and geometry.wiring) with one schema holding every setting of
    every registered option; validation then refuses, through the chosen option's own
    dataclass, the settings that option does not read."""
    import dataclasses

    from colgraph.geometry import GEOMETRIES, WIRINGS, GeometryConfig

    schema = GeometryConfig.schema()
    geo = {f.name for f in dataclasses.fields(schema)}
    wiring = {f.name for f in dataclasses.fields(schema.__dataclass_fields__["wiring"].type)}
    assert all(set(option.settings()) <= geo for option in GEOMETRIES.values())
    assert all(set(option.settings()) <= wiring for option in WIRINGS.values())
    assert {"name", "wiring"} <= geo and "rule" in wiring


# a geometry config as checkpoints (and .hydra/config.yaml) held it before the registry: one
# flat dict with every builder's field, those of the other builders at their defaults
OLD_GEOMETRY = {"width": 8, "height": None, "widths": [8, 6, 4], "spacing": 2.0,
                "inter": "knn", "inter_k": 9, "n": 256, "shape": "box", "dim": 2,
                "size": None, "seed": 0, "input_size": 64, "output_size": 16, "path": None,
                "coords": None}
NEWER_GEOMETRIES = {"hex"}  # added after the flat configs: no old checkpoint holds them
OLD_WIRING = {"rule": "knn", "k": 16, "r": 1.5, "long_range": 0, "lam": 4.0, "seed": 0,
              "self_loops": False}


def old_shape(config: dict) -> dict:
    """``config`` with its geometry node in the flat shape of old checkpoints."""
    geometry = {k: v for k, v in config["geometry"].items() if v is not None}
    wiring = {k: v for k, v in geometry.pop("wiring").items() if v is not None}
    return {**config, "geometry": {**OLD_GEOMETRY, **geometry,
                                   "wiring": {**OLD_WIRING, **wiring}}}


@pytest.mark.parametrize("option", [o for o in GEOMETRY_OPTIONS if o not in NEWER_GEOMETRIES])
def test_old_flat_geometry_configs_still_load(option):
    """A checkpoint's config from before the registry validates and builds the same sheet,
    also merged on the schema as load_model does."""
    from omegaconf import OmegaConf

    from colgraph.config import Config, to_container, validate_config

    cfg = compose([f"geometry={option}", *PARTNERS.get(("geometry", option), [])])
    old = old_shape(to_container(cfg))
    assert set(old["geometry"]) == set(OLD_GEOMETRY) | {"name", "wiring"}
    fingerprint = build_geometry(cfg.geometry).fingerprint()
    assert build_geometry(old["geometry"]).fingerprint() == fingerprint
    checked = validate_config(old)["geometry"]
    assert checked == validate_config(cfg)["geometry"]
    merged = OmegaConf.merge(OmegaConf.structured(Config), old)
    assert build_geometry(merged.geometry).fingerprint() == fingerprint


def test_old_flat_config_is_strict_about_changed_settings():
    """Only settings still at their old defaults are dropped: one the option never read,
    changed, was refused before the registry too."""
    from colgraph.config import to_container, validate_config

    old = old_shape(to_container(compose(["geometry=grid"])))
    old["geometry"]["widths"] = [4, 4]
    with pytest.raises(ValueError, match=r"geometry.widths=\[4, 4\] does not apply to "
                       r"geometry=grid"):
        validate_config(old)


def test_checkpoint_with_an_old_flat_config_loads_and_resumes(tmp_path):
    from colgraph.checkpoint import load_checkpoint, save_checkpoint
    from colgraph.restore import load_model
    from colgraph.training import train

    overrides = TINY + ["train.max_steps=2", "train.epochs=1"]
    train(compose(overrides), tmp_path / "a")
    state = load_checkpoint(tmp_path / "a")
    state.pop("path")
    state["config"] = old_shape(state["config"])
    save_checkpoint(tmp_path / "a" / "checkpoint.pt", state)
    model, geometry, cfg, _ = load_model(tmp_path / "a", with_data=False)
    assert geometry.fingerprint() == state["geometry_fingerprint"]
    assert build_geometry(cfg.geometry).fingerprint() == state["geometry_fingerprint"]
    resumed = [o for o in overrides if not o.startswith("train.max_steps")]
    train(compose(resumed + ["train.max_steps=3", f"train.resume={tmp_path / 'a'}"]),
          tmp_path / "b")
    assert load_checkpoint(tmp_path / "b")["step"] == 3


def test_graph_geometry_gains_the_configured_wiring():
    """geometry=graph uses the file's edges; a wiring rule adds edges on top of them."""
    from colgraph.config import validate_config
    from colgraph.geometry import read_geometry

    path = ROOT / "examples" / "two_areas.graphml"
    base = [o for o in TINY if not o.startswith(("geometry.widths", "geometry.wiring"))]

    def build(*overrides):
        cfg = compose(base + ["geometry=graph", f"geometry.path={path}", *overrides])
        validate_config(cfg)
        return build_geometry(cfg.geometry)

    plain = build()
    assert torch.equal(plain.edge_index, read_geometry(path).edge_index)
    more = build("geometry.wiring.long_range=2")
    key = lambda g: set((g.edge_index[1] * g.num_columns + g.edge_index[0]).tolist())
    assert key(plain) < key(more)
    assert more.num_edges == plain.num_edges + 2 * plain.num_columns  # 2 new inputs each


def test_old_wiring_cost_keys_still_work_with_a_warning(tmp_path):
    """wiring.* was renamed wiring_cost.* (geometry.wiring.* is the wiring RULE): the old
    key still sets the cost (over configs/config.yaml's wiring_cost.weight), with a
    FutureWarning naming the new one; the config passed in is left alone."""
    from colgraph.checkpoint import load_checkpoint
    from colgraph.config import upgrade_config, validate_config
    from colgraph.training import train

    old = compose(TINY + ["wiring.weight=0.3"])
    with pytest.warns(FutureWarning, match=r"wiring.weight is now called wiring_cost.weight"):
        new = upgrade_config(old)
    assert new.wiring_cost.weight == 0.3 and new.wiring.weight is None
    assert old.wiring.weight == 0.3  # a copy
    with pytest.warns(FutureWarning):
        assert validate_config(old)["wiring_cost"].weight == 0.3
    with pytest.warns(FutureWarning):
        train(compose(TINY + ["wiring.weight=0.3", "train.max_steps=1"]), tmp_path)
    assert load_checkpoint(tmp_path)["config"]["wiring_cost"]["weight"] == 0.3
