"""A checkpoint's config where it is used (load_model, train.resume, train.init_from):
validated with "the checkpoint's config" in the message, old keys renamed, interpolations
kept as the text they are; old checkpoint formats still load and resume; a checkpoint
lacking what a use reads is refused by name."""
import copy
import warnings

import pytest
import torch
from omegaconf import OmegaConf

from colgraph.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from colgraph.restore import as_omegaconf, load_model
from colgraph.training import train

from conftest import TINY, compose
from test_checkpoint import write_format4

RUN = TINY + ["train.epochs=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A two-step run's checkpoint state (without its 'path')."""
    run = tmp_path_factory.mktemp("trained")
    train(compose(RUN + ["train.max_steps=2"]), run)
    state = load_checkpoint(run)
    state.pop("path")
    return state


def _resave(state, directory, edit=None):
    """``state`` (a deep copy, edited by ``edit``) saved as a checkpoint in ``directory``:
    a legitimately written file, its checksums right, whatever the edit did."""
    state = copy.deepcopy(state)
    if edit is not None:
        edit(state)
    directory.mkdir(parents=True, exist_ok=True)
    save_checkpoint(directory / CHECKPOINT_NAME, state)
    return directory


def _set(group, key, value):
    return lambda state: state["config"][group].__setitem__(key, value)


def test_resume_refuses_an_edited_counter(trained, tmp_path):
    """The issue's example end to end: epoch = -3 edited into a checkpoint with torch.load /
    torch.save resumed with rc 0; now the run is refused before any work."""
    src = _resave(trained, tmp_path / "a")
    raw = torch.load(src / CHECKPOINT_NAME, weights_only=True)
    raw["epoch"] = -3
    torch.save(raw, src / CHECKPOINT_NAME)
    with pytest.raises(ValueError, match="its 'epoch' fails the SHA-256 checksum"):
        train(compose(RUN + ["train.max_steps=3", f"train.resume={src}"]), tmp_path / "b")
    assert not (tmp_path / "b" / "metrics.csv").exists()


@pytest.mark.parametrize("use", ["load_model", "resume", "init_from"])
def test_an_invalid_stored_config_is_refused_where_it_is_used(trained, tmp_path, use):
    """Checksums right (the file was written so), the values not: refused by the same checks
    a run's own config gets, naming the checkpoint's config."""
    src = _resave(trained, tmp_path / "a", _set("model", "heads", 0))
    with pytest.raises(ValueError, match=r"the checkpoint's config has a problem.*\n  - "
                                         r".*model.heads"):
        if use == "load_model":
            load_model(src, with_data=False)
        else:
            train(compose(RUN + ["train.max_steps=3", f"train.{use}={src}"]), tmp_path / "b")


def test_every_problem_of_the_stored_config_is_listed(trained, tmp_path):
    def edit(state):
        state["config"]["model"]["heads"] = 0
        state["config"]["task"]["name"] = "nope"
        state["config"]["optim"]["lr"] = "${oc.env:HOME}"

    src = _resave(trained, tmp_path / "a", edit)
    with pytest.raises(ValueError, match=r"the checkpoint's config has 2 problems"):
        load_model(src, with_data=False)  # model and task: what load_model reads
    with pytest.raises(ValueError, match=r"the checkpoint's config has 3 problems(.|\n)*"
                                         r"optim.lr(.|\n)*\$\{oc.env:HOME\}"):
        train(compose(RUN + ["train.max_steps=3", f"train.resume={src}"]), tmp_path / "b")


@pytest.mark.parametrize("config,match", [
    ([1, 2], "the checkpoint's config is a list, not a mapping"),
    ({"task": {"name": "classify_image"}}, "group model is missing"),
    ("model", "the checkpoint's config is a str"),
])
def test_a_stored_config_of_the_wrong_shape_is_refused(trained, tmp_path, config, match):
    src = _resave(trained, tmp_path / "a", lambda s: s.__setitem__("config", config))
    with pytest.raises(ValueError, match=match):
        load_model(src, with_data=False)


def test_a_group_the_use_does_not_read_is_not_judged(trained, tmp_path):
    """An old run whose train.* a newer colgraph would refuse still loads for analysis (and
    a data set registered only in the training session is not needed without data)."""
    def edit(state):
        state["config"]["train"]["epochs"] = 0
        state["config"]["data"]["name"] = "registered_elsewhere"

    model, _, cfg, data = load_model(_resave(trained, tmp_path / "a", edit), with_data=False)
    assert cfg.train.epochs == 0 and data is None


def test_stored_interpolations_stay_text(trained, tmp_path, monkeypatch):
    """A '${...}' in a stored config is text (the config was resolved when it was written):
    never resolved on load, so a checkpoint cannot read this machine's environment."""
    monkeypatch.setenv("COLGRAPH_SECRET", "leaked")
    texts = {"root": "${oc.env:COLGRAPH_SECRET}", "path": "C:\\runs\\${x}\\\\${y}"}

    def edit(state):
        state["config"]["data"].update(texts)

    _, _, cfg, _ = load_model(_resave(trained, tmp_path / "a", edit), with_data=False)
    assert cfg.data.root == texts["root"] and cfg.data.path == texts["path"]
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert plain["data"]["root"] == texts["root"] and "leaked" not in str(plain)
    # in a group that is validated, the text is judged as the text it is
    src = _resave(trained, tmp_path / "b", _set("task", "pool", "${oc.env:COLGRAPH_SECRET}"))
    with pytest.raises(ValueError, match=r"task.pool.*\$\{oc.env:COLGRAPH_SECRET\}"):
        load_model(src, with_data=False)


def test_as_omegaconf_keeps_every_string_literal():
    for text in ["${a}", "\\${a}", "\\\\${a}", "x${", "$", "a\\b", "${a:${b}}", "}{$"]:
        cfg = as_omegaconf({"data": {"root": text}, "task": {"name": "classify_image"}})
        assert cfg.data.root == text, text
    with pytest.raises(ValueError, match="the checkpoint's config does not fit this "
                                         "colgraph's config schema"):
        as_omegaconf({"train": {"epochs": "many"}}, "ckpt.pt")


def test_an_old_renamed_group_is_read_silently(trained, tmp_path):
    """wiring.* (renamed wiring_cost.*) in a checkpoint from before the rename: its values
    are used, without the FutureWarning that tells a user to rename a key they cannot."""
    def edit(state):
        state["config"].pop("wiring_cost")
        state["config"]["wiring"] = {"weight": 0.3, "p": 2.0}

    src = _resave(trained, tmp_path / "a", edit)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        _, _, cfg, _ = load_model(src, with_data=False)
    assert cfg.wiring_cost.weight == 0.3 and cfg.wiring_cost.p == 2.0


def test_a_format_4_checkpoint_still_loads_and_resumes(trained, tmp_path):
    """Written before the checksums covered the config and counters: loads and resumes,
    with the warning that says what cannot be verified; the resumed run writes format 5."""
    src = tmp_path / "a"
    src.mkdir()
    write_format4(src / CHECKPOINT_NAME, trained)
    with pytest.warns(UserWarning, match="format 4: its tensors are verified"):
        model, _, _, _ = load_model(src, with_data=False)
    with pytest.warns(UserWarning, match="format 4"):
        train(compose(RUN + ["train.max_steps=3", f"train.resume={src}"]), tmp_path / "b")
    resumed = load_checkpoint(tmp_path / "b")
    assert resumed["step"] == 3 and resumed["checkpoint_format"] == 5


@pytest.mark.parametrize("drop,use,match", [
    ("optimizer", "resume", "lacks 'optimizer': it cannot resume a run"),
    ("geometry_fingerprint", "init_from", "lacks 'geometry_fingerprint': it cannot start a "
                                          "run from its weights"),
    ("model", "load_model", "lacks 'model': it cannot rebuild a model"),
])
def test_a_checkpoint_lacking_what_a_use_reads_is_refused(trained, tmp_path, drop, use, match):
    src = _resave(trained, tmp_path / "a", lambda s: s.pop(drop))
    with pytest.raises(ValueError, match=match):
        if use == "load_model":
            load_model(src, with_data=False)
        else:
            train(compose(RUN + ["train.max_steps=3", f"train.{use}={src}"]), tmp_path / "b")


@pytest.mark.parametrize("value", ["64", 0, None, 2.5, True])
def test_resume_checks_the_stored_batch_size(trained, tmp_path, value):
    src = _resave(trained, tmp_path / "a", _set("train", "batch_size", value))
    with pytest.raises(ValueError, match=r"the checkpoint's config has a problem: "
                                         r"train.batch_size must be an integer >= 1"):
        train(compose(RUN + ["train.max_steps=3", f"train.resume={src}"]), tmp_path / "b")


def test_a_stored_split_setting_with_a_fixed_split_file_only_warns(trained, tmp_path):
    """An old run that set data.test_fraction for a .pt with its own x_test (ignored then,
    refused now) still loads with its data, with a warning naming the checkpoint."""
    x, y = torch.rand(20, 8, 8), torch.arange(20) % 10
    torch.save({"x": x, "y": y, "x_test": x[:10], "y_test": y[:10]}, tmp_path / "d.pt")

    def edit(state):
        state["config"]["data"].update(name="file", path=str(tmp_path / "d.pt"),
                                       test_fraction=0.3)

    src = _resave(trained, tmp_path / "a", edit)
    with pytest.warns(UserWarning, match=r"checkpoint.pt: the checkpoint's config: "
                                         r"data.test_fraction=0.3 cannot take effect: .*d.pt "
                                         r"has its own test split"):
        _, _, _, data = load_model(src)
    assert len(data.x_test) == 10
