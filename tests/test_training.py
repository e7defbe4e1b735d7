"""End-to-end: train, resume, wiring cost, checkpoint safety, bad resume paths."""
import csv

import pytest
import torch

from colgraph.training import CHECKPOINT_FORMAT, CHECKPOINT_NAME, load_checkpoint, param_groups, save_checkpoint, train

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
    free = train(compose(base + ["wiring.weight=0"]), tmp_path / "free")
    wired = train(compose(base + ["wiring.weight=5.0"]), tmp_path / "wired")
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
    from colgraph.training import build_model
    from colgraph.geometry import build_geometry

    cfg = compose(TINY)
    model = build_model(cfg, build_geometry(cfg.geometry), (1, 8, 8), 10)
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert "columnformer.sheets.0.mlp.fc1.weight" in decayed
    assert "columnformer.sheets.0.attn.query.weight" in decayed
    for n in ("columnformer.sheets.0.attn.edge_bias", "columnformer.column_embed",
              "columnformer.sheets.0.norm1.weight", "columnformer.sheets.0.mlp.fc1.bias"):
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
    from colgraph.training import load_model

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
