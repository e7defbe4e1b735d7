"""Every task end to end (tiny configs), checkpoint round trips, known answers, bad input."""
import numpy as np
import pytest
import torch

from colgraph.config import TaskConfig
from colgraph.data import Augment
from colgraph.tasks import TASKS as REGISTERED_TASKS
from colgraph.tasks import MaskedImageModelling, NextFramePrediction, random_mask
from colgraph.checkpoint import load_checkpoint
from colgraph.restore import load_model
from colgraph.training import train

from conftest import compose

FAST = ["model.channels=16", "model.steps=2", "train.batch_size=64", "train.progress=false",
        "train.tensorboard=false", "device=cpu"]
SEQ = ["data=waves", "data.samples=200", "geometry=line", "geometry.n=16"]
TASKS = {
    "classify_image": ["task=classify_image", "geometry.widths=[8,4]", "geometry.wiring.k=6"],
    "classify_sequence": ["task=classify_sequence", *SEQ, "data.augment.shift=4",
                          "data.augment.scale=0.2", "task.pool=max"],
    "masked_image": ["+experiment=mim", "task.mask_ratio=0.25"],
    "predict_sequence": ["task=predict_sequence", *SEQ, "model.steps=3"],
}


@pytest.mark.parametrize("name", TASKS)
def test_task_trains_and_round_trips_through_a_checkpoint(tmp_path, name):
    metrics = train(compose(FAST + TASKS[name] + ["train.max_steps=3"]), tmp_path)
    state = load_checkpoint(tmp_path)
    assert state["task"]["name"] == name and state["step"] == 3
    key = {"classify_image": "test_acc", "classify_sequence": "test_acc"}.get(name, "test_mse")
    assert np.isfinite(metrics[key]) and metrics["wiring_length"] > 0
    model, _, cfg, data = load_model(tmp_path)  # rebuilt from config + task spec
    again, _, _, _ = load_model(tmp_path, with_data=False)
    x, y = data.x_test[:8], data.y_test[:8]
    with torch.no_grad():
        a, b = model(x, y), again(x, y)
    assert torch.equal(a.prediction, b.prediction) and float(a.loss) == float(b.loss)
    from colgraph.connectome import to_networkx

    G = to_networkx(tmp_path, loader="test", max_batches=1)  # what the task feeds the sheet
    assert G.number_of_edges() == model.columnformer.edges.num_edges
    assert all(d["attention"] >= 0 for _, _, d in G.edges(data=True))


def test_forecast_beats_persistence_after_training(tmp_path):
    metrics = train(compose(FAST + TASKS["predict_sequence"] + ["train.epochs=8"]), tmp_path)
    assert metrics["test_mse"] < 0.8 * metrics["test_persistence_mse"]


def test_mim_loss_counts_masked_patches_only():
    from colgraph.geometry import grid, knn
    from colgraph import ColumnformerConfig

    task = MaskedImageModelling(grid(4, wiring=knn(4)), ColumnformerConfig(channels=8, steps=2),
                                TaskConfig(name="masked_image", mask_ratio=0.5), (1, 4, 4), 10)
    task.eval()
    x = torch.randn(3, 1, 4, 4)
    mask = task.mask(3, x.device)
    assert mask.sum(1).tolist() == [8, 8, 8]
    target = task.encoder.patches(x)
    task.readout = lambda out: torch.where(mask.unsqueeze(-1), target, target + 5.0)
    assert float(task(x).loss) == 0.0  # perfect on masked patches, wrong elsewhere
    task.readout = lambda out: torch.where(mask.unsqueeze(-1), target + 1.0, target)
    assert float(task(x).loss) == pytest.approx(1.0)


def test_random_mask_is_exact_and_seeded():
    m = random_mask(5, 10, 0.3, torch.Generator().manual_seed(1))
    assert m.sum(1).tolist() == [3] * 5
    assert torch.equal(m, random_mask(5, 10, 0.3, torch.Generator().manual_seed(1)))


def test_forecast_frames_and_windows_follow_the_line():
    from colgraph.geometry import knn, line
    from colgraph import ColumnformerConfig

    task = NextFramePrediction(line(4, wiring=knn(2)), ColumnformerConfig(channels=8, steps=2),
                               TaskConfig(name="predict_sequence"), (1, 12), 2)
    x = torch.arange(12.0).view(1, 1, 12)  # frames [0..3], [4..7], [8..11], window 1
    w = task.targets(x)
    assert w.shape == (1, 3, 4, 1) and w[0, 1, :, 0].tolist() == [4.0, 5.0, 6.0, 7.0]
    assert task.encode(x).shape == (1, 2, 4, 8)
    res = task(x)
    assert res.prediction.shape == (1, 2, 4, 1) and res.out.outputs.shape == (1, 2, 4, 8)
    # persistence error: every window moves by 4 per frame -> 16
    assert float(res.stats["persistence_mse"]) == pytest.approx(16.0)


def test_augment_known_answers():
    x = torch.arange(6.0).view(1, 1, 6)
    torch.manual_seed(0)
    shifted = Augment(shift=2)(x.expand(50, 1, 6))
    starts = {tuple(r[0].tolist()) for r in shifted}
    assert (0.0, 0.0, 0.0, 1.0, 2.0, 3.0) in starts or (2.0, 3.0, 4.0, 5.0, 0.0, 0.0) in starts
    assert all(sum(r) > 0 for r in starts) and len(starts) > 1  # zero-filled crops
    img = torch.arange(4.0).view(1, 1, 2, 2).expand(20, 1, 2, 2)
    flipped = Augment(flip=True)(img)
    assert {tuple(r.flatten().tolist()) for r in flipped} == {(0., 1., 2., 3.), (1., 0., 3., 2.)}
    scaled = Augment(scale=0.5)(torch.ones(100, 1, 3))
    assert 0.5 <= float(scaled.min()) and float(scaled.max()) <= 1.5
    assert not Augment().enabled
    with pytest.raises(ValueError, match="data.augment.shift must be >= 0"):
        Augment(shift=-1)


def test_pretrain_then_probe_and_finetune(tmp_path):
    pre = tmp_path / "pre"
    train(compose(FAST + TASKS["masked_image"] + ["train.max_steps=3"]), pre)
    src = load_checkpoint(pre)["model"]
    probe = tmp_path / "probe"
    train(compose(FAST + ["+experiment=probe", f"train.init_from={pre}", "train.max_steps=3"]),
          probe)
    after = load_checkpoint(probe)["model"]
    for k in src:
        if k.startswith(("columnformer.", "encoder.")) and torch.is_tensor(src[k]):
            assert torch.equal(src[k], after[k]), k  # frozen and carried over
    assert "head.weight" in after and "mask_token" not in after
    tune = tmp_path / "tune"
    train(compose(FAST + ["+experiment=finetune", f"train.init_from={pre}", "train.max_steps=3",
                          "model.dropout=0.1", "model.recompute=true"]), tune)  # runtime only
    tuned = load_checkpoint(tune)["model"]
    assert not torch.equal(src["columnformer.column_embed"], tuned["columnformer.column_embed"])


def test_bad_task_input(tmp_path):
    with pytest.raises(ValueError, match=r"task.mask_ratio must be in \(0, 1\)"):
        train(compose(FAST + ["+experiment=mim", "task.mask_ratio=1.0"]), tmp_path / "a")
    with pytest.raises(ValueError, match="Sequences of length 64.*input area 'input' has 10"):
        train(compose(FAST + ["task=classify_sequence", *SEQ, "geometry.n=10"]), tmp_path / "b")
    with pytest.raises(ValueError, match="data=digits holds images but the task reads sequences"):
        train(compose(FAST + ["task=classify_sequence", "geometry=line"]), tmp_path / "c")
    with pytest.raises(ValueError, match="not a multiple of 4"):
        train(compose(FAST + TASKS["predict_sequence"] + ["data.length=30"]), tmp_path / "d")
    with pytest.raises(ValueError, match="task.pool must be one of mean, max \(got 'sum'\)"):
        train(compose(FAST + ["task.pool=sum"]), tmp_path / "e")
    with pytest.raises(ValueError, match="norm_pix=true normalises each target patch"):
        train(compose(FAST + ["+experiment=mim", "task.norm_pix=true"]), tmp_path / "f")


def test_bad_init_from(tmp_path):
    seq = tmp_path / "seq"
    train(compose(FAST + TASKS["predict_sequence"] + ["train.max_steps=1"]), seq)
    with pytest.raises(ValueError, match="encoder reads sequence samples, but "
                                         "task=classify_image reads images"):
        train(compose(FAST + ["+experiment=probe", f"train.init_from={seq}"]), tmp_path / "a")
    img = tmp_path / "img"
    train(compose(FAST + TASKS["masked_image"] + ["train.max_steps=1"]), img)
    with pytest.raises(ValueError, match="was trained on Geometry\\(grid\\(8x8\\).*this config "
                                         "builds Geometry\\(torus"):
        train(compose(FAST + ["+experiment=probe", "geometry=torus", f"train.init_from={img}"]),
              tmp_path / "b")
    with pytest.raises(ValueError, match=r"other model settings: model.sharing=none \(here full\)"):
        train(compose(FAST + ["+experiment=probe", "model.sharing=full",
                              f"train.init_from={img}"]), tmp_path / "c")
    with pytest.raises(ValueError, match="train.freeze=sheet freezes the edge biases"):
        train(compose(FAST + ["+experiment=probe", "plasticity=set"]), tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="Checkpoint not found"):
        train(compose(FAST + ["+experiment=probe", f"train.init_from={tmp_path / 'nope'}"]),
              tmp_path / "e")


# a data set (and a sheet that fits its samples) for each kind of samples a task can read
DATA_FOR = {"image": ["data=digits", "geometry.widths=[8,4]", "geometry.wiring.k=6"],
            "sequence": ["data=waves", "data.samples=100", "geometry=line", "geometry.n=16"]}


@pytest.mark.parametrize("name", list(REGISTERED_TASKS))
def test_every_registered_task_composes_and_builds(name):
    """Each task of the registry composes, validates and gives a finite loss on a batch of
    the data it reads (timm's tests/test_models.py style: no list of tasks to keep)."""
    from colgraph.config import validate_config
    from colgraph.geometry import build_geometry
    from colgraph.restore import build_model, load_task_data
    from colgraph.tasks import task_class

    cfg = compose([f"task.name={name}", *DATA_FOR[task_class(name).modality],
                   "model.channels=8", "model.steps=3"])
    validate_config(cfg)
    data = load_task_data(cfg)
    model = build_model(cfg, build_geometry(cfg.geometry), data.sample_shape, data.num_classes)
    res = model(data.x_train[:4], data.y_train[:4])
    assert torch.isfinite(res.loss) and res.prediction.size(0) == 4, name
    res.loss.backward()
    assert any(p.grad is not None for p in model.parameters()), f"No gradient for {name}"
