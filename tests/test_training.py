"""End-to-end: train, resume, wiring cost, checkpoint safety, bad resume paths."""
import csv

import pytest
import torch

from colgraph.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from colgraph.training import param_groups, train

from conftest import TINY, compose


def test_train_then_resume(tmp_path, capsys):
    run = tmp_path / "run"
    metrics = train(compose(TINY), run)
    assert 0.0 <= metrics["test_acc"] <= 1.0 and metrics["wiring_length"] > 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "wiring length" in out and str(run) in out
    ckpt = load_checkpoint(run)
    assert ckpt["epoch"] == 2 and ckpt["step"] == 2 * 12  # 1437 / 128 -> 12 steps per epoch
    for key in ("config", "geometry", "model", "optimizer", "scheduler", "rng", "step"):
        assert key in ckpt, f"checkpoint lacks {key}"
    # resume for one more epoch: continues the step count and appends metrics
    resumed = train(compose(TINY + ["train.epochs=3", f"train.resume={run}"]), run)
    assert load_checkpoint(run)["step"] == 3 * 12
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert "Resumed from" in capsys.readouterr().out
    assert resumed["test_acc"] > 0.1


def test_resume_is_exact(tmp_path):
    """2 epochs straight == 1 epoch + resume for 1: same weights."""
    straight = tmp_path / "straight"
    train(compose(TINY), straight)
    part = tmp_path / "part"
    train(compose(TINY + ["train.epochs=1"]), part)
    # the schedule depends on the total epochs: resume into the 2-epoch config
    train(compose(TINY + [f"train.resume={part}"]), part)
    a, b = load_checkpoint(straight)["model"], load_checkpoint(part)["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) if isinstance(a[k], torch.Tensor)
               else str(a[k]) == str(b[k]) for k in a)


def test_wiring_cost_shortens_wiring(tmp_path):
    base = TINY + ["train.epochs=3", "train.batch_size=64"]
    free = train(compose(base + ["wiring_cost.weight=0"]), tmp_path / "free")
    wired = train(compose(base + ["wiring_cost.weight=5.0"]), tmp_path / "wired")
    assert wired["wiring_length"] < 0.9 * free["wiring_length"]


def test_max_steps_stops_early(tmp_path):
    metrics = train(compose(TINY + ["train.max_steps=3"]), tmp_path)
    assert load_checkpoint(tmp_path)["step"] == 3 and "test_acc" in metrics


def test_resume_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="Checkpoint not found.*train.resume"):
        train(compose(TINY + [f"train.resume={tmp_path / 'nowhere'}"]), tmp_path / "run")


def test_resume_different_geometry(tmp_path):
    train(compose(TINY + ["train.max_steps=1"]), tmp_path / "a")
    with pytest.raises(ValueError, match="Cannot resume.*trained on Geometry.*current config"):
        train(compose(TINY + ["geometry.wiring.k=5", f"train.resume={tmp_path / 'a'}"]),
              tmp_path / "b")


def test_not_a_checkpoint(tmp_path):
    torch.save({"weights": 1}, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(ValueError, match="not a colgraph checkpoint"):
        load_checkpoint(tmp_path)


def test_crash_while_saving_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, {"colgraph_version": "x", "checkpoint_format": CHECKPOINT_FORMAT, "step": 1})

    def boom(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, {"colgraph_version": "x", "checkpoint_format": CHECKPOINT_FORMAT, "step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1


def test_weight_decay_groups_by_name():
    from colgraph.restore import build_model
    from colgraph.geometry import build_geometry

    cfg = compose(TINY)
    model = build_model(cfg, build_geometry(cfg.geometry), (1, 8, 8), 10)
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert "columnformer.blocks.0.mlp.fc1.weight" in decayed
    assert "columnformer.blocks.0.attn.query.weight" in decayed
    for n in ("columnformer.blocks.0.attn.edge_bias", "columnformer.column_embed",
              "columnformer.blocks.0.norm1.weight", "columnformer.blocks.0.mlp.fc1.bias"):
        assert n not in decayed, f"{n} must not be decayed"


def test_cuda_request_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(RuntimeError, match="CUDA is not available.*device=cpu"):
        train(compose(TINY + ["device=cuda"]), tmp_path)


def test_incompatible_checkpoint_format(tmp_path):
    torch.save({"colgraph_version": "0.0.1", "checkpoint_format": 0}, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(ValueError, match=f"checkpoint format 0; this colgraph .* reads format {CHECKPOINT_FORMAT}"):
        load_checkpoint(tmp_path)


def test_load_model_without_data(tmp_path):
    from colgraph.restore import load_model

    train(compose(TINY + ["train.max_steps=1"]), tmp_path)
    model, geometry, cfg, data = load_model(tmp_path, with_data=False)
    assert data is None and model.head.out_features == 10
    res = model(torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long))
    assert res.prediction.shape == (2, 10)


def test_recompute_trains_to_the_same_weights(tmp_path):
    states = []
    for name, extra in (("stored", []), ("recomputed", ["model.recompute=true"])):
        train(compose(TINY + ["model.dropout=0.2", "train.max_steps=3"] + extra), tmp_path / name)
        states.append(load_checkpoint(tmp_path / name)["model"])
    tensors = [k for k, v in states[0].items() if isinstance(v, torch.Tensor)]
    assert len(tensors) > 10
    for k in tensors:
        assert torch.allclose(states[0][k], states[1][k], atol=1e-5), k


def test_fused_adamw_matches_foreach(tmp_path):
    """optim.fused=true (no optimizer temporaries) trains to the same weights."""
    base = TINY + ["train.max_steps=3"]
    train(compose(base), tmp_path / "foreach")
    train(compose(base + ["optim.fused=true"]), tmp_path / "fused")
    a, b = (load_checkpoint(tmp_path / r)["model"] for r in ("foreach", "fused"))
    tensors = [k for k in a if torch.is_tensor(a[k])]
    assert a.keys() == b.keys() and tensors
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in tensors)


def test_fused_must_be_a_bool():
    """optim.fused is refused at composition, before any data loads."""
    with pytest.raises(Exception, match="optim.fused=maybe"):
        compose(TINY + ["optim.fused=maybe"])


def test_bf16_weights_train_save_and_resume(tmp_path):
    """model.weight_dtype=bfloat16 trains (finite, near the fp32 run), its checkpoint keeps
    bf16 weights, it resumes, and an fp32 checkpoint starts a bf16 run (a runtime option)."""
    base = TINY + ["train.max_steps=3"]
    train(compose(base), tmp_path / "fp32")
    train(compose(base + ["model.weight_dtype=bfloat16"]), tmp_path / "bf16")
    a, b = (load_checkpoint(tmp_path / r)["model"] for r in ("fp32", "bf16"))
    half = [k for k in b if torch.is_tensor(b[k]) and b[k].dtype == torch.bfloat16]
    assert half and all(".fc1." in k or ".fc2." in k or ".query." in k or ".key." in k
                        or ".value." in k or ".out." in k for k in half)
    for k in half:
        assert torch.isfinite(b[k].float()).all()
        assert torch.allclose(a[k], b[k].float(), atol=3e-2), k
    train(compose(base + ["model.weight_dtype=bfloat16", "train.max_steps=4",
                          f"train.resume={tmp_path / 'bf16'}"]), tmp_path / "bf16")
    assert load_checkpoint(tmp_path / "bf16")["step"] == 4
    train(compose(base + ["model.weight_dtype=bfloat16",
                          f"train.init_from={tmp_path / 'fp32'}"]), tmp_path / "from_fp32")
    assert load_checkpoint(tmp_path / "from_fp32")["model"][half[0]].dtype == torch.bfloat16


def test_mid_epoch_stop_resumes_exactly(tmp_path):
    """train.max_steps=5 stops inside epoch 1 (12 steps per epoch); resuming continues with
    batch 6 of that epoch and ends with the weights of an uninterrupted run."""
    base = TINY + ["model.dropout=0.1"]
    train(compose(base), tmp_path / "straight")
    train(compose(base + ["train.max_steps=5"]), tmp_path / "part")
    ckpt = load_checkpoint(tmp_path / "part")
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (0, 5, 5)
    train(compose(base + [f"train.resume={tmp_path / 'part'}"]), tmp_path / "part")
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "part")
    assert b["step"] == a["step"] == 24 and b["epoch"] == 2
    tensors = [k for k in a["model"] if torch.is_tensor(a["model"][k])]
    assert all(torch.allclose(a["model"][k], b["model"][k], atol=1e-5) for k in tensors)
    # the logs are those of the uninterrupted run: the partial row of the stop at step 5
    # is replaced by epoch 1's full row, whose training statistics cover batches 1-12
    assert _rows(tmp_path / "part") == _rows(tmp_path / "straight")
    assert [r["epoch"] for r in _rows(tmp_path / "part")] == ["1", "2"]


def _rows(run_dir, name="metrics.csv"):
    """A log's rows without the wall-clock column."""
    rows = list(csv.DictReader((run_dir / name).open()))
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


def test_checkpoint_every_writes_mid_epoch(tmp_path, monkeypatch):
    from colgraph.training import hooks

    saved = []
    real = hooks.save_checkpoint
    monkeypatch.setattr(hooks, "save_checkpoint",
                        lambda path, state: saved.append((state["step"], state["batch"]))
                        or real(path, state))
    train(compose(TINY + ["train.epochs=1", "train.checkpoint_every=5"]), tmp_path)
    assert saved == [(5, 5), (10, 10), (12, 0)]


def test_changed_optimizer_settings_apply_on_resume(tmp_path, capsys):
    train(compose(TINY + ["train.epochs=1"]), tmp_path)
    train(compose(TINY + ["optim.lr=1e-4", "optim.weight_decay=0.2", f"train.resume={tmp_path}"]),
          tmp_path)
    assert "optim.lr: 0.002 -> 0.0001" in capsys.readouterr().out
    ckpt = load_checkpoint(tmp_path)
    groups = ckpt["optimizer"]["param_groups"]
    assert groups[0]["initial_lr"] == 1e-4 and groups[0]["weight_decay"] == 0.2
    assert groups[1]["weight_decay"] == 0.0 and groups[0]["lr"] <= 1e-4
    assert ckpt["config"]["optim"]["lr"] == 1e-4


def test_changed_architecture_on_resume_names_the_setting(tmp_path):
    train(compose(TINY + ["train.max_steps=1"]), tmp_path)
    with pytest.raises(ValueError, match=r"other model settings: model.channels=16 \(here 24\)"):
        train(compose(TINY + ["model.channels=24", f"train.resume={tmp_path}"]), tmp_path)


def test_divergence_names_the_tensor_and_keeps_the_good_checkpoint(tmp_path, monkeypatch):
    """A non-finite gradient stops training before the update, naming the first bad
    tensor; the checkpoint on disk stays the last good one; skip_nonfinite counts and
    skips such batches instead."""
    from colgraph.tasks.classification import Classification as Classify

    train(compose(TINY + ["train.epochs=1"]), tmp_path)
    good = load_checkpoint(tmp_path)["model"]
    real = Classify.forward

    def poisoned(self, x, y):  # the readout's gradient becomes NaN, the loss stays finite
        res = real(self, x, y)
        self.head.weight.register_hook(lambda g: g * float("nan"))
        return res

    monkeypatch.setattr(Classify, "forward", poisoned)
    with pytest.raises(FloatingPointError, match=r"gradient of head.weight \(\d+ of \d+ values "
                                                 r"non-finite\).*last good checkpoint is"):
        train(compose(TINY + [f"train.resume={tmp_path}"]), tmp_path)
    after = load_checkpoint(tmp_path)["model"]
    assert all(torch.equal(good[k], after[k]) for k in good if torch.is_tensor(good[k]))
    metrics = train(compose(TINY + ["train.skip_nonfinite=true", "train.max_skipped_fraction=1",
                                    f"train.resume={tmp_path}"]), tmp_path)
    assert metrics["skipped_batches"] == 12 and load_checkpoint(tmp_path)["skipped"] == 12


def test_non_finite_data_is_blamed(tmp_path, monkeypatch):
    from colgraph.training import assembly

    real = assembly.load_task_data

    def nan_data(cfg):
        data = real(cfg)
        data.x_train[3, 0, 0, 0] = float("nan")
        return data

    monkeypatch.setattr(assembly, "load_task_data", nan_data)
    with pytest.raises((FloatingPointError, ValueError), match="non-finite|NaN"):
        train(compose(TINY), tmp_path)


def test_diverged_checkpoint_is_refused_before_analysis(tmp_path):
    from colgraph.checkpoint import save_checkpoint as save
    from colgraph.restore import load_model

    train(compose(TINY + ["train.max_steps=1"]), tmp_path)
    state = load_checkpoint(tmp_path)
    state["model"]["columnformer.column_embed"][0, 0] = float("nan")
    del state["path"]
    save(tmp_path / CHECKPOINT_NAME, state)
    with pytest.raises(ValueError, match=r"diverged model: parameter columnformer.column_embed "
                                         r"\(1 of"):
        load_model(tmp_path)
    from colgraph.connectome import report  # what scripts/analyze.py runs first

    with pytest.raises(ValueError, match="diverged model"):
        report(tmp_path, tmp_path / "analysis", loader=None)
    assert not (tmp_path / "analysis").exists()  # refused before any file is written


def test_resume_into_a_new_directory_links_the_runs(tmp_path):
    """hydra gives a resumed run a new directory: it starts with the earlier rows and says
    where it came from; reusing a directory of another run warns before appending."""
    train(compose(TINY + ["train.epochs=1"]), tmp_path / "a")
    train(compose(TINY + [f"train.resume={tmp_path / 'a'}"]), tmp_path / "b")
    rows = list(csv.DictReader((tmp_path / "b" / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert str(tmp_path / "a") in (tmp_path / "b" / "resumed_from.txt").read_text()
    with pytest.warns(UserWarning, match="already holds metrics.csv of another run"):
        train(compose(TINY + ["train.max_steps=1"]), tmp_path / "b")


def test_checkpoint_stores_data_and_geometry_paths_absolute(tmp_path, monkeypatch):
    """A run started with relative paths can be analysed from anywhere."""
    import numpy as np

    from colgraph.restore import load_model

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((60, 8, 8)).astype(np.float32),
             y=np.arange(60) % 3)
    monkeypatch.chdir(tmp_path)
    train(compose(TINY + ["data=file", "data.path=d.npz", "train.max_steps=1"]), tmp_path / "r")
    assert load_checkpoint(tmp_path / "r")["config"]["data"]["path"] == str(tmp_path / "d.npz")
    monkeypatch.chdir("/")
    _, _, _, data = load_model(tmp_path / "r")  # loads its data from another directory
    assert data.num_classes == 3


def test_metrics_rows_never_shift_columns(tmp_path):
    """metrics.csv has one header for the whole run: an unevaluated epoch leaves the test
    columns empty, an evaluated one fills them; a key outside the header is refused; an
    older file with another header is rewritten once under this one."""
    import csv

    from colgraph.training.logs import CsvLog, metrics_schema

    path = tmp_path / "metrics.csv"
    out = CsvLog(path, ["epoch", "train_loss", "test_acc"])
    out.append({"epoch": 1, "train_loss": 2.0})
    out.append({"epoch": 2, "train_loss": 1.5, "test_acc": 0.6})
    out.append({"epoch": 3, "train_loss": 1.0})
    rows = list(csv.DictReader(path.open()))
    assert [r["test_acc"] for r in rows] == ["", "0.6", ""]
    assert [r["train_loss"] for r in rows] == ["2.0", "1.5", "1.0"]
    with pytest.raises(ValueError, match="brings surprise"):
        out.append({"epoch": 4, "surprise": 1})
    again = CsvLog(path, ["epoch", "step", "train_loss", "test_acc"])  # a resumed run
    again.append({"epoch": 4, "step": 9})
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["epoch", "step", "train_loss", "test_acc"]
    assert [r["step"] for r in rows] == ["", "", "", "9"] and rows[1]["test_acc"] == "0.6"
    assert not (tmp_path / "metrics.csv.tmp").exists()
    assert metrics_schema(("acc",))[:4] == ["epoch", "step", "train_loss", "train_acc"]


def _full_disk_after(monkeypatch, rows: int) -> None:
    """The disk fills up after ``rows`` rows were appended to a run's CSV logs."""
    import errno

    from colgraph.training import logs

    real, count = logs.csv.DictWriter.writerows, []

    def writerows(self, rows_):
        count.append(1)
        if len(count) > rows:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, rows_)

    monkeypatch.setattr(logs.csv.DictWriter, "writerows", writerows)


def test_a_log_the_disk_refuses_names_the_file_and_the_reason(tmp_path, monkeypatch):
    from colgraph.checkpoint import CheckpointWriteError
    from colgraph.training.logs import CsvLog

    _full_disk_after(monkeypatch, 0)
    with pytest.raises(CheckpointWriteError) as e:
        CsvLog(tmp_path / "plasticity.csv").append({"step": 3, "edges": 10})
    assert str(e.value) == (f"Could not write the log {tmp_path / 'plasticity.csv'}: the disk "
                            f"is full (no space left on device) (OSError, errno 28). Free "
                            f"space on the disk holding {tmp_path}.")
    assert e.value.errno == 28 and isinstance(e.value, OSError)


def test_full_disk_at_a_metrics_row_says_the_last_checkpoint_is_intact(tmp_path, monkeypatch):
    """Epoch 1's row and checkpoint are written; the disk is full at epoch 2's row: the run
    stops with the file, the reason and the checkpoint to resume from, which is epoch 1's."""
    from colgraph.checkpoint import CheckpointWriteError, load_checkpoint

    _full_disk_after(monkeypatch, 1)
    with pytest.raises(CheckpointWriteError, match=(
            rf"Could not write the log {tmp_path / 'metrics.csv'}: the disk is full .* The "
            rf"last good checkpoint, {tmp_path / 'checkpoint.pt'}, is intact. Free space on "
            rf"the disk holding {tmp_path}, then resume from it with "
            rf"train.resume={tmp_path}.")):
        train(compose(TINY), tmp_path)
    assert load_checkpoint(tmp_path)["epoch"] == 1


def test_metrics_header_is_fixed_when_evaluation_is_sparse(tmp_path):
    """With train.eval_every=2 the first row has no test metrics, yet the header holds them
    from the start (no rewrite when the first evaluated epoch arrives)."""
    train(compose(TINY + ["train.epochs=2", "train.eval_every=2"]), tmp_path)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert rows[0]["test_acc"] == "" and float(rows[1]["test_acc"]) >= 0
    assert (tmp_path / "metrics.csv").read_text().count("epoch,") == 1


def test_epoch_callbacks_run_on_every_epoch(tmp_path):
    from colgraph.connectome import ConnectomeSnapshots

    seen = []
    train(compose(TINY + ["train.epochs=2", "train.max_steps=30"]), tmp_path,
          callbacks=[lambda model, data, epoch, run_dir: seen.append((epoch, run_dir))])
    assert seen == [(1, tmp_path), (2, tmp_path)]
    with pytest.raises(ValueError, match=r"ConnectomeSnapshots needs every >= 1"):
        ConnectomeSnapshots(0)


def test_diverged_but_finite_run_is_stopped(tmp_path):
    """optim.lr=1e6 with skip_nonfinite: more than train.max_skipped_fraction (0.1) of an
    epoch's 12 batches skipped stops the run with the reason, instead of finishing at
    chance; the last good checkpoint stays as it was."""
    train(compose(TINY + ["train.epochs=1"]), tmp_path)
    good = load_checkpoint(tmp_path)
    with pytest.raises(FloatingPointError, match=r"Stopped at step \d+: 2 of the first \d+ "
                       r"batches of epoch 2 were skipped .*more than "
                       r"train.max_skipped_fraction=0.1 of its 12 batches allows: the run is "
                       r"diverging. Lower optim.lr.*last good checkpoint is"):
        train(compose(TINY + ["optim.lr=1e6", "train.skip_nonfinite=true",
                              f"train.resume={tmp_path}"]), tmp_path)
    after = load_checkpoint(tmp_path)
    assert after["step"] == good["step"] == 12
    assert all(torch.equal(good["model"][k], after["model"][k]) for k in good["model"]
               if torch.is_tensor(good["model"][k]))


@pytest.mark.parametrize("override, match", [
    ("train.max_skipped_fraction=1.5", r"train.max_skipped_fraction must be in \[0, 1\]"),
    ("train.max_skipped_fraction=nan", r"train.max_skipped_fraction must be in \[0, 1\]"),
    ("train.max_skipped_fraction=-0.1", r"train.max_skipped_fraction must be in \[0, 1\]"),
    ("train.max_skipped_fraction=0.5", r"train.max_skipped_fraction must be left at 0.1 unless "
                                       r"train.skip_nonfinite=true"),
])
def test_max_skipped_fraction_is_checked_before_any_work(tmp_path, override, match):
    with pytest.raises(ValueError, match=match):
        train(compose(TINY + [override]), tmp_path)
    assert not (tmp_path / "metrics.csv").exists()


def test_one_skipped_batch_in_an_epoch_is_within_the_default(tmp_path, monkeypatch):
    """The boundary: 1 of 12 batches (<= 0.1 * 12) is skipped and the run goes on; with
    max_skipped_fraction=0 the first skip stops it."""
    from colgraph.training import loop

    real, calls = loop.check_and_clip, []

    def one_bad(*args, **kwargs):
        calls.append(1)
        return "the loss is nan (on some rank)" if len(calls) == 3 else real(*args, **kwargs)

    monkeypatch.setattr(loop, "check_and_clip", one_bad)
    metrics = train(compose(TINY + ["train.epochs=1", "train.skip_nonfinite=true"]), tmp_path)
    assert metrics["skipped_batches"] == 1 and metrics["step"] == 11
    calls.clear()
    with pytest.raises(FloatingPointError, match=r"1 of the first 3 batches .*"
                                                 r"max_skipped_fraction=0.0"):
        train(compose(TINY + ["train.epochs=1", "train.skip_nonfinite=true",
                              "train.max_skipped_fraction=0"]), tmp_path / "zero")
