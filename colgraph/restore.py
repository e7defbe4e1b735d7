"""Rebuild trained models from checkpoints, and write weights-only exports.

The one place that turns a checkpoint back into a model: :func:`load_model` (used by the
connectome export, ``analyze``, the examples and :func:`colgraph.load_model`) and
:func:`export_model`; training builds its model with the same :func:`build_model`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .checkpoint import first_nonfinite, load_checkpoint, save_checkpoint
from .config import Config, to_container
from .data import DataSplits, load_data
from .geometry import Geometry
from .model import ColumnformerConfig
from .tasks import Task, build_task, task_class
from .validation import stored_config

__all__ = ["load_task_data", "build_model", "load_model", "export_model", "EXPORT_KEYS"]


def load_task_data(cfg: Any) -> DataSplits:
    """The data set ``cfg.data`` as the samples task ``cfg.task`` reads."""
    return load_data(cfg.data, task_class(cfg.task.name).modality)


def build_model(cfg: Any, geometry: Geometry, sample_shape: tuple[int, ...],
                num_classes: int) -> Task:
    """The task ``cfg.task`` (encoder + Columnformer ``cfg.model`` + readout) on ``geometry``."""
    model_cfg = ColumnformerConfig(**to_container(cfg.model))
    return build_task(cfg.task, model_cfg, geometry, sample_shape, num_classes)


def load_model(path: str | os.PathLike, with_data: bool = True,
               data_path: str | os.PathLike | None = None
               ) -> tuple[Task, Geometry, Any, DataSplits | None]:
    """Rebuild a trained model from a checkpoint (file or run directory, or a weights-only
    file from :func:`export_model`), in eval mode.

    Returns ``(model, geometry, config, data)``. ``geometry`` is the sheet as trained: its
    CURRENT wiring (after any pruning / growth) and columns, from the checkpoint itself, so
    custom geometries need not be rebuilt (the construction-time geometry is
    ``load_checkpoint(path)["geometry"]``). ``with_data=False`` skips loading the dataset
    (``data`` is then ``None``): the task's sample shape and class count are stored in the
    checkpoint (``state["task"]``). ``data_path``: where a ``data=file`` run's data file is
    now, if it moved since training.

    Example:
        >>> import colgraph
        >>> model, geometry, cfg, data = colgraph.load_model("runs/.../checkpoint.pt")  # doctest: +SKIP
    """
    from omegaconf import OmegaConf

    state = load_checkpoint(path)
    if data_path is not None:
        if state["config"].get("data", {}).get("name") != "file":
            raise ValueError(f"data_path (--data) replaces the data file of a data=file run, "
                             f"but {state['path']} was trained on "
                             f"data={state['config'].get('data', {}).get('name')}, which "
                             f"needs no file.")
        state["config"]["data"]["path"] = str(Path(data_path).expanduser().resolve())
    bad = first_nonfinite(state["model"].items())
    if bad is not None:  # before any figure or file is made from it
        raise ValueError(f"{state['path']} holds a diverged model: parameter {bad}. Use a "
                         f"checkpoint from before the divergence, or retrain with a lower "
                         f"optim.lr.")
    # on the schema: settings added since the run was trained take their defaults
    cfg = OmegaConf.merge(OmegaConf.structured(Config), state["config"])
    geometry = Geometry.from_state_dict(state["geometry"])
    data = load_task_data(cfg) if with_data else None
    spec = state["task"]
    with stored_config():  # saved before a check existed: what it cannot use, warned about
        model = build_model(cfg, geometry, tuple(spec["sample_shape"]), spec["num_classes"])
    model.load_state_dict(state["model"])
    return model.eval(), model.columnformer.geometry, cfg, data


#: what a weights-only export keeps of a checkpoint (no optimizer, scheduler, RNG or
#: plasticity state: it rebuilds the model, it cannot resume training)
EXPORT_KEYS = ("colgraph_version", "checkpoint_format", "config", "geometry",
               "geometry_fingerprint", "model", "task", "metrics", "epoch", "step")


def export_model(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the weights-only part of a checkpoint (a run directory or file) to ``out``:
    what :func:`load_model`, ``train.init_from`` and the connectome tools need, without the
    optimizer state (a third or less of the size). Same safe format: tensors only,
    checksums, atomic write."""
    state = load_checkpoint(path)
    out = Path(out)
    if out.resolve() == Path(state["path"]).resolve():
        raise ValueError(f"export_model would overwrite the checkpoint {out} it reads: "
                         f"choose another file name.")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, {**{k: state[k] for k in EXPORT_KEYS if k in state},
                          "weights_only": True})
    return out
