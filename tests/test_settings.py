"""Settings that cannot take effect are refused before any work (a checkpoint's config only
warns), and validate_config lists every problem of every group at once."""

import dataclasses
import warnings

import pytest
import torch

from colgraph.config import check_geometry, validate_config
from colgraph.geometry import build_geometry, grid, knn

from conftest import TINY, compose

BASE = [o for o in TINY if not o.startswith("geometry.widths")]  # the stack default
SEQ = ["task=classify_sequence", "data=waves", "data.samples=200", "geometry=line",
       "geometry.n=16"]

# (overrides, what the refusal says): a setting the chosen combination does not read
UNREAD = [
    # issue 21's examples
    (["data.path=x.npz"], r"data.path='x.npz' does not apply to data=digits .*only "
                          r"data=file read it"),
    (["task.mask_ratio=0.3"], r"task.mask_ratio=0.3 does not apply to task=classify_image "
                              r"\(its settings: patch_size, pool, label_smoothing\); only "
                              r"task=masked_image"),
    (["plasticity.every=10"], r"plasticity.every=10 does not apply to plasticity=none.*"
                              r"Plasticity is off: choose a schedule \(plasticity=set \| rigl"),
    (["scale.at_step=100"], r"scale.at_step=100 has no effect without scale.area"),
    (["train.resume=a", "train.init_from=b"],
     r"train.resume=a continues that run .* train.init_from=b would be ignored"),
    # the same class, found in every group
    (["data.root=/data"], r"data.root='/data' does not apply to data=digits.*mnist \| cifar10"),
    (["data.download=false"], r"data.download=False does not apply to data=digits"),
    (["data.samples=100"], r"data.samples=100 does not apply to data=digits.*only data=waves"),
    (["data.noise=0.5"], r"data.noise=0.5 does not apply to data=digits"),
    (["data=mnist", "data.test_fraction=0.3"],
     r"data.test_fraction=0.3 does not apply to data=mnist \(its settings: root, download\)"),
    (["task.window=4"], r"task.window=4 does not apply to task=classify_image.*only "
                        r"task=classify_sequence \| predict_sequence"),
    (["task.norm_pix=true"], r"task.norm_pix=True does not apply to task=classify_image"),
    (["task.decoder_area=output"], r"task.decoder_area='output' does not apply"),
    (["+experiment=mim", "task.pool=max"], r"task.pool='max' does not apply to "
                                           r"task=masked_image"),
    (["+experiment=mim", "task.label_smoothing=0.1"], r"task.label_smoothing=0.1 does not apply"),
    (SEQ + ["task.patch_size=2"], r"task.patch_size=2 does not apply to task=classify_sequence"),
    (["plasticity.drop_fraction=0.5"], r"plasticity.drop_fraction=0.5 does not apply to "
                                       r"plasticity=none"),
    (["plasticity=rigl", "plasticity.target_density=0.5"],
     r"plasticity.target_density=0.5 does not apply to plasticity.budget=constant.*only "
     r"budget=anneal"),
    (["plasticity=set", "plasticity.drop_fraction=0"],
     r"plasticity.drop_fraction=0 with plasticity.budget=constant replaces no edge"),
    (["plasticity=set", "plasticity.stop=10"], r"plasticity.stop=10 ends the schedule before "
                                               r"its first update \(step 25"),
    (["scale.factor=3"], r"scale.factor=3 has no effect without scale.area"),
    (["smoothness.temperature=0.5"], r"smoothness.temperature=0.5 has no effect with "
                                     r"smoothness.weight=0"),
    (["smoothness.negatives=4"], r"smoothness.negatives=4 has no effect with smoothness.weight=0"),
    (["wiring_cost.weight=0", "wiring_cost.p=2"], r"wiring_cost.p=2.0 has no effect with "
                                                  r"wiring_cost.weight=0"),
    (["model.sharing_rank=8"], r"model.sharing_rank=8 does not apply to model.sharing=none.*"
                               r"only sharing=lowrank"),
    (["model.sharing=groups", "model.sharing_rank=2"], r"model.sharing_rank=2 does not apply"),
    (["model.steps=1", "model.tied_depth=false"], r"model.tied_depth=false has no effect with "
                                                  r"model.steps=1"),
    (["model.steps=1", "model.inject=every"], r"model.inject=every has no effect with "
                                              r"model.steps=1"),
    (["train.connectome_every=5"], r"train.connectome_every=5 epochs is more than "
                                   r"train.epochs=2: no connectome snapshot"),
    # across groups
    (SEQ[:-1] + ["task=predict_sequence", "geometry.n=16", "model.steps=3",
                 "model.inject=every"], r"model.inject=every has no effect with "
                                        r"task=predict_sequence"),
    (["plasticity=rigl", "train.max_steps=10"], r"plasticity=rigl first updates the edges at "
                                                r"step 25 .* after train.max_steps=10"),
    (["scale.area=area1", "scale.at_step=50", "train.max_steps=10"],
     r"scale.at_step=50 is after train.max_steps=10: the sheet would never grow"),
]


@pytest.mark.parametrize("overrides,match", UNREAD, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else "")
def test_a_setting_that_cannot_take_effect_is_refused(overrides, match):
    with pytest.raises(ValueError, match=match):
        validate_config(compose(BASE + overrides))


# the same settings where they do take effect, or moved nowhere (a default is never a problem)
READ = [
    ["data=file", "data.path=x.npz"],
    ["data.path=null", "task.mask_ratio=0.5", "plasticity.every=50", "scale.at_step=0",
     "smoothness.temperature=0.1", "model.sharing_rank=4", "train.connectome_every=2",
     "wiring_cost.weight=0", "wiring_cost.p=1"],
    ["+experiment=mim", "task.mask_ratio=0.3", "task.norm_pix=true"],
    [*SEQ, "data.noise=0.5", "task.window=4", "task.pool=max"],
    ["plasticity=rigl", "plasticity.every=10", "plasticity.budget=anneal",
     "plasticity.target_density=0.5", "plasticity.stop=10"],
    ["plasticity=set", "plasticity.drop_fraction=0", "plasticity.budget=anneal",
     "plasticity.target_density=0.8"],
    ["plasticity=rigl", "train.max_steps=25"],
    ["scale.area=area1", "scale.at_step=10", "scale.factor=3", "train.max_steps=10"],
    ["smoothness.weight=0.1", "smoothness.temperature=0.5", "smoothness.negatives=4"],
    ["smoothness.radius=2"],  # the logged smoothness measure reads it
    ["wiring_cost.weight=0.2", "wiring_cost.p=2"],
    ["model.sharing=lowrank", "model.sharing_rank=8"],
    ["model.steps=1"],
    ["train.resume=a"], ["train.init_from=b"],
]


@pytest.mark.parametrize("overrides", READ, ids=" ".join)
def test_settings_that_take_effect_pass(overrides):
    validate_config(compose(BASE + overrides))


def test_every_problem_of_every_group_is_listed_at_once():
    cfg = compose(BASE + ["optim.lr=0", "optim.grad_clip=-1", "train.eval_every=0",
                          "train.max_steps=0", "data.path=x.npz", "data.samples=50",
                          "task.mask_ratio=0.3", "model.dropout=1.5", "model.heads=3",
                          "plasticity.every=0", "plasticity.min_in_degree=0",
                          "smoothness.negatives=0", "scale.factor=3", "device=bogus"])
    with pytest.raises(ValueError) as info:
        validate_config(cfg)
    message = str(info.value)
    expected = ["optim.lr must be", "optim.grad_clip must be", "train.eval_every must be",
                "train.max_steps must be", "data.path='x.npz' does not apply",
                "data.samples=50 does not apply", "task.mask_ratio=0.3 does not apply",
                "model.dropout must be", "'heads' must divide 'channels'",
                "plasticity.every must be", "plasticity.min_in_degree must be",
                "smoothness needs", "scale.factor=3 has no effect", "device must be"]
    assert message.startswith(f"The config has {len(expected)} problems:\n  - ")
    for part in expected:
        assert message.count(part) == 1, part


def test_split_settings_with_an_npz_test_split_are_refused_before_loading(tmp_path):
    """An .npz names its arrays in its archive: validate_config refuses data.test_fraction /
    data.split_seed for a file with x_test / y_test without reading an array (a .pt's keys
    are in its pickle: load_data refuses them, before anything is built)."""
    import numpy as np

    x, y = np.zeros((8, 8, 8), np.float32), np.arange(8) % 2
    np.savez(tmp_path / "fixed.npz", x=x, y=y, x_test=x, y_test=y)
    np.savez(tmp_path / "plain.npz", x=x, y=y)
    fixed = ["data=file", f"data.path={tmp_path / 'fixed.npz'}"]
    with pytest.raises(ValueError, match=r"data.test_fraction=0.3 and data.split_seed=2 cannot "
                                         r"take effect: .*fixed.npz has its own test split"):
        validate_config(compose(BASE + fixed + ["data.test_fraction=0.3", "data.split_seed=2"]))
    validate_config(compose(BASE + fixed))
    validate_config(compose(BASE + ["data=file", f"data.path={tmp_path / 'plain.npz'}",
                                    "data.test_fraction=0.3", "data.split_seed=2"]))
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y),
                "x_test": torch.from_numpy(x), "y_test": torch.from_numpy(y)},
               tmp_path / "fixed.pt")
    validate_config(compose(BASE + ["data=file", f"data.path={tmp_path / 'fixed.pt'}",
                                    "data.split_seed=2"]))  # known at load (test_data.py)


def test_wrong_types_of_a_group_are_listed_together():
    from colgraph import ColumnformerConfig

    with pytest.raises(ValueError) as info:
        ColumnformerConfig(channels="32", steps=2.5, recompute=1)
    for key in ("model.channels must be int", "model.steps must be int",
                "model.recompute must be bool"):
        assert key in str(info.value)
    with pytest.raises(TypeError, match=r"model.channels must be int"):  # one: its own type
        ColumnformerConfig(channels="32")


@pytest.mark.parametrize("override,match", [
    ("smoothness.radius=nan", "smoothness needs"),
    ("smoothness.temperature=inf", "smoothness needs"),
    ("smoothness.weight=nan", "smoothness needs"),
    ("sparsity.weight=nan", r"sparsity.weight must be a finite number >= 0 \(got nan\)"),
    ("sparsity.weight=-1", r"sparsity.weight must be a finite number >= 0"),
    ("data.width=100", r"data.width must be <= data.length \(64\)"),
    ("data.classes=1", r"data.classes must be >= 2"),
    ("data.samples=4", r"data.samples must be >= data.classes \(8\)"),
])
def test_boundary_values_are_refused(override, match):
    overrides = [*SEQ, override] if override.startswith("data") else [override]
    with pytest.raises(ValueError, match=match):
        validate_config(compose(BASE + overrides))


def test_the_python_api_refuses_the_same():
    from colgraph import ColumnformerConfig
    from colgraph.config import DataConfig, PlasticityConfig, ScaleConfig, TaskConfig

    for make, match in [
        (lambda: ColumnformerConfig(sharing_rank=8), "model.sharing_rank=8 does not apply"),
        (lambda: PlasticityConfig(every=10), "plasticity.every=10 does not apply"),
        (lambda: PlasticityConfig.preset("none", drop_fraction=0.5), "plasticity=none"),
        (lambda: TaskConfig(name="classify_image", mask_ratio=0.3), "task.mask_ratio=0.3"),
        (lambda: DataConfig(name="digits", path="x.npz"), "data.path='x.npz'"),
        (lambda: ScaleConfig(at_step=5), "scale.at_step=5 has no effect"),
    ]:
        with pytest.raises(ValueError, match=match):
            make()


def test_train_refuses_before_loading_data(tmp_path, monkeypatch):
    """The issue's examples, as `train` sees them: refused before data is loaded (and,
    for those that need the sheet, right after it is built), leaving no checkpoint."""
    from colgraph.training import assembly, train

    monkeypatch.setattr(assembly, "load_task_data", lambda cfg: pytest.fail("data loaded"))
    cases = [(["data.path=x.npz"], "data.path"), (["task.mask_ratio=0.3"], "task.mask_ratio"),
             (["plasticity.every=10"], "plasticity.every"), (["scale.at_step=9"], "scale"),
             (["train.resume=a", "train.init_from=b"], "train.init_from=b would be ignored"),
             (["geometry=grid", "geometry.width=4", "model.sharing=groups"],
              "the same as model.sharing=full"),
             (["geometry=grid", "geometry.width=3", "geometry.wiring.k=8", "plasticity=set"],
              "plasticity.budget=constant cannot keep the edge count")]
    for i, (overrides, match) in enumerate(cases):
        with pytest.raises(ValueError, match=match):
            train(compose(BASE + overrides), tmp_path / str(i))
        assert not (tmp_path / str(i) / "checkpoint.pt").exists()


def _checked(*overrides):
    cfg = compose(BASE + list(overrides))
    return validate_config(cfg), build_geometry(cfg.geometry)


def test_groups_sharing_that_equals_full_or_none_is_refused():
    checked, geo = _checked("geometry=grid", "geometry.width=4", "model.sharing=groups")
    with pytest.raises(ValueError, match=r"model.sharing=groups shares weights per area, but "
                       r"the areas of .* \(sheet, input, output\) make one group of all its 16 "
                       r"columns: the same as model.sharing=full. Use model.sharing=full"):
        check_geometry(checked, geo)
    one_each = dataclasses.replace(geo, areas={**{f"a{i}": [i] for i in range(16)},
                                               "input": list(range(16)),
                                               "output": list(range(16))})
    with pytest.raises(ValueError, match=r"one group per column of its 16 columns: the "
                       r"same as model.sharing=none"):
        check_geometry(checked, one_each)
    check_geometry(*_checked("model.sharing=groups"))  # a stack: one group per area
    # resuming: the run's own architecture, which it cannot change: a warning
    with pytest.warns(UserWarning, match="The resumed run: model.sharing=groups"):
        check_geometry(checked, geo, resumed=True)


def test_plasticity_needs_room_to_grow():
    full = ("geometry=grid", "geometry.width=3", "geometry.wiring.k=8", "plasticity=set")
    checked, geo = _checked(*full)
    assert geo.num_edges == 9 * 8  # every pair wired
    with pytest.raises(ValueError, match=r"holds 72 of the 72 possible edges between its 9 "
                       r"columns, so at most 0 can grow, but the first update drops 22 "
                       r"\(plasticity.drop_fraction=0.3\).*Lower plasticity.drop_fraction to "
                       r"<= 0"):
        check_geometry(checked, geo)
    # 7 of 8 inputs: room for 9, the first update drops round(0.125 * 63) = 8: fits
    check_geometry(*_checked(*full[:2], "geometry.wiring.k=7", "plasticity=set",
                             "plasticity.drop_fraction=0.125"))
    # ... and round(0.15 * 63) = 9 = the room: fits exactly; 10 does not
    check_geometry(*_checked(*full[:2], "geometry.wiring.k=7", "plasticity=set",
                             "plasticity.drop_fraction=0.15"))
    with pytest.raises(ValueError, match="at most 9 can grow, but the first update drops 10"):
        check_geometry(*_checked(*full[:2], "geometry.wiring.k=7", "plasticity=set",
                                 "plasticity.drop_fraction=0.16"))
    # budget=anneal shrinking the sheet needs no room; growing past it does
    check_geometry(*_checked(*full, "plasticity.budget=anneal", "plasticity.target_density=0.5"))
    with pytest.raises(ValueError, match=r"target_density=2.0 asks for 144 edges .* room for "
                       r"72"):
        check_geometry(*_checked(*full, "plasticity.budget=anneal",
                                 "plasticity.target_density=2"))
    check_geometry(*_checked("plasticity=set"))  # the default stack has room


def test_a_checkpoints_config_only_warns(tmp_path):
    """Runs saved before these checks (their configs may hold such values) still load with
    load_model, with a warning naming the setting; values out of range are still errors."""
    from colgraph import ColumnformerConfig
    from colgraph.checkpoint import load_checkpoint, save_checkpoint
    from colgraph.restore import load_model
    from colgraph.training import train

    train(compose(TINY + ["train.max_steps=1", "train.epochs=1"]), tmp_path / "a")
    state = load_checkpoint(tmp_path / "a")
    state.pop("path")
    old = state["config"]
    old["model"]["sharing_rank"] = 8  # sharing=none: unread
    old["data"]["samples"] = 100  # data=digits: unread
    old["plasticity"]["every"] = 10  # plasticity=none: unread
    old["train"]["init_from"] = str(tmp_path / "elsewhere")
    save_checkpoint(tmp_path / "a" / "checkpoint.pt", state)
    with pytest.warns(UserWarning) as record:
        model, _, cfg, _ = load_model(tmp_path / "a", with_data=False)
    said = [str(w.message) for w in record if "sharing_rank" in str(w.message)]
    assert len(said) == 1 and said[0].endswith(  # once, naming the file
        "the checkpoint's config: model.sharing_rank=8 does not apply to model.sharing=none "
        "(its settings: none); only sharing=lowrank read it. Remove the override or choose "
        "one of those.") and str(tmp_path / "a") in said[0]
    assert cfg.model.sharing_rank == 8 and model.columnformer.num_columns == 80
    with pytest.warns(UserWarning) as record:
        checked = validate_config(old, stored=True)
    assert checked["data"].samples == 100
    messages = "\n".join(str(w.message) for w in record)
    for key in ("model.sharing_rank=8", "data.samples=100", "plasticity.every=10"):
        assert f"The checkpoint's config: {key}" in messages
    with pytest.raises(ValueError, match="The config has 3 problems"):
        validate_config(old)  # as a new run's config: refused
    old["optim"]["lr"] = -1.0
    with pytest.raises(ValueError, match="optim.lr must be a finite number > 0"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        validate_config(old, stored=True)
    with pytest.raises(ValueError, match="model.sharing_rank=8"):  # leniency ends with it
        ColumnformerConfig(sharing_rank=8)


def test_group_defaults_are_never_a_problem():
    """A field at its default never is: each group's dataclass builds with no overrides."""
    from colgraph.config import GROUPS

    required = {"data": {"name": "digits"}, "task": {"name": "classify_image"}}
    for group, cls in GROUPS.items():
        if group != "geometry":
            cls(**required.get(group, {}))


def test_room_counts_self_loops_as_unregrowable():
    """Grown edges are never self-edges: a sheet's self-loops take no room from the pairs
    that can grow, but count among the edges dropped."""
    from colgraph.config import PlasticityConfig

    cfg = PlasticityConfig.preset("set")
    cfg.check_room(3, 4)  # 2 of 6 pairs free, drops round(0.3 * 4) = 1
    cfg.check_room(3, 7, self_loops=3)  # 4 pairs wired + 3 loops: 2 free, drops 2
    with pytest.raises(ValueError, match="at most 0 can grow, but the first update drops 3"):
        cfg.check_room(3, 9, self_loops=3)
    PlasticityConfig().check_room(3, 6)  # off: nothing to check


# ----------------------------------------------- tasks and data sets registered by a user
@pytest.fixture
def user_entries():
    """A task and a data set registered with the settings they read, and a task without."""
    from colgraph.data import DATASETS
    from colgraph.tasks import TASKS, ImageClassification, register_task

    @register_task
    class Glimpse(ImageClassification):  # reads patch_size only (its pool is fixed)
        name, settings = "glimpse", ("patch_size",)

    class Anything(ImageClassification):  # undeclared: may read any task.* key
        name = "anything"

    TASKS.register("anything")(Anything)
    DATASETS.register("bars", settings=("samples", "noise", "test_fraction"))(lambda cfg: None)
    yield
    for registry, name in ((TASKS, "glimpse"), (TASKS, "anything"), (DATASETS, "bars")):
        del registry[name]


@pytest.mark.parametrize("make, match", [
    (dict(task="glimpse", mask_ratio=0.3),
     r"^task.mask_ratio=0.3 does not apply to task=glimpse \(its settings: patch_size\); only "
     r"task=masked_image read it. Remove the override or choose one of those.$"),
    (dict(task="glimpse", pool="max"), r"task.pool='max' does not apply to task=glimpse .*only "
                                       r"task=classify_image \| classify_sequence read it"),
    (dict(data="bars", path="x.npz"), r"^data.path='x.npz' does not apply to data=bars \(its "
                                      r"settings: samples, noise, test_fraction\); only "
                                      r"data=file read it"),
    (dict(data="bars", seed=3), r"data.seed=3 does not apply to data=bars .*only data=waves"),
    # a user entry that declares a key is one of its readers in the others' messages
    (dict(data="digits", noise=0.5), r"data.noise=0.5 does not apply to data=digits .*only "
                                     r"data=waves \| bars read it"),
    (dict(data="mnist", test_fraction=0.3), r"only data=digits \| file \| waves \| bars read it"),
])
def test_a_user_entry_refuses_what_it_does_not_read(user_entries, make, match):
    from colgraph.config import DataConfig, TaskConfig

    make = dict(make)
    with pytest.raises(ValueError, match=match):
        if "task" in make:
            TaskConfig(name=make.pop("task"), **make)
        else:
            DataConfig(name=make.pop("data"), **make)


def test_a_user_entry_accepts_what_it_declares(user_entries):
    from colgraph.config import DataConfig, TaskConfig

    TaskConfig(name="glimpse", patch_size=2)
    DataConfig(name="bars", samples=50, noise=0.5, test_fraction=0.3)
    # undeclared: today's behaviour, nothing refused (it may read any key)
    TaskConfig(name="anything", mask_ratio=0.3, pool="max", window=4)


def test_a_user_task_is_checked_in_a_composed_config(user_entries):
    """The same refusal through validate_config, with every problem listed."""
    with pytest.raises(ValueError, match=r"task.mask_ratio=0.3 does not apply to task=glimpse"):
        validate_config(compose(BASE + ["task.name=glimpse", "task.mask_ratio=0.3"]))
    validate_config(compose(BASE + ["task.name=glimpse", "task.patch_size=2"]))


def test_a_declared_setting_that_is_no_key_is_refused(user_entries):
    from colgraph.config import TaskConfig
    from colgraph.tasks import TASKS, ImageClassification

    class Typo(ImageClassification):
        name, settings = "typo", ("patch_size", "mask_ration")

    TASKS.register("typo", settings=Typo.settings)(Typo)
    try:
        with pytest.raises(ValueError, match=r"The task 'typo' declares the setting\(s\) "
                                             r"mask_ration, which task has no key for \(its "
                                             r"keys: name, patch_size, .*\). Fix settings="):
            TaskConfig(name="typo")
        TaskConfig(name="glimpse", patch_size=2)  # another entry's wrong declaration: not ours
    finally:
        del TASKS["typo"]


def test_a_subclass_of_a_built_in_task_declares_its_own_settings(user_entries):
    """Settings are not inherited: a subclass may read more than its parent, so without
    its own declaration it is undeclared (nothing refused), as before."""
    from colgraph.config import TaskConfig
    from colgraph.tasks import TASKS, MaskedImageModelling, register_task

    @register_task
    class Pooled(MaskedImageModelling):  # reads task.pool too, say
        name = "pooled_masked"

    try:
        assert TASKS.settings_of("pooled_masked") is None
        TaskConfig(name="pooled_masked", pool="max")
    finally:
        del TASKS["pooled_masked"]
