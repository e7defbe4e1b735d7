"""Rebuild trained models from checkpoints, and write weights-only exports.

The one place that turns a checkpoint back into a model: :func:`load_model` (used by the
connectome export, ``analyze``, the examples and :func:`colgraph.load_model`) and
:func:`export_model`; training builds its model with the same :func:`build_model`.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

from .checkpoint import first_nonfinite, load_checkpoint, require_keys, save_checkpoint
from .config import GROUPS, RENAMED, Config, from_node, to_container, upgrade_config
from .validation import problems_of
from .data import DataSplits, load_data
from .geometry import Geometry
from .model import ColumnformerConfig
from .parallel import ColumnShard, Partition
from .tasks import Task, build_task, task_class
from .validation import stored_config

__all__ = ["load_task_data", "build_model", "checkpoint_config", "as_omegaconf", "load_model",
           "export_model", "EXPORT_KEYS"]


def load_task_data(cfg: Any) -> DataSplits:
    """The data set ``cfg.data`` as the samples task ``cfg.task`` reads."""
    return load_data(cfg.data, task_class(cfg.task.name).modality)


def build_model(cfg: Any, geometry: Geometry, sample_shape: tuple[int, ...],
                num_classes: int, shard: ColumnShard | None = None) -> Task:
    """The task ``cfg.task`` (encoder + Columnformer ``cfg.model`` + readout) on ``geometry``
    (on this process's ``shard`` of a column-sharded sheet)."""
    model_cfg = ColumnformerConfig(**to_container(cfg.model))
    return build_task(cfg.task, model_cfg, geometry, sample_shape, num_classes, shard)


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
    state = load_checkpoint(path)
    require_keys(state, ("config", "geometry", "model", "task"), "rebuild a model")
    config = checkpoint_config(state, ("model", "task", "data") if with_data
                               else ("model", "task"))
    if data_path is not None:
        if config.get("data", {}).get("name") != "file":
            raise ValueError(f"data_path (--data) replaces the data file of a data=file run, "
                             f"but {state['path']} was trained on "
                             f"data={config.get('data', {}).get('name')}, which "
                             f"needs no file.")
        config["data"]["path"] = str(Path(data_path).expanduser().resolve())
    _refuse_diverged(state["model"], state["path"])  # before any figure or file is made
    cfg = as_omegaconf(config, state["path"])
    geometry = Geometry.from_state_dict(state["geometry"])
    if state.get("partition") is not None:  # a column-sharded run: its column order (the
        # labels keep the original ids), the whole sheet in one process
        geometry = Partition.from_state_dict(state["partition"]).renumber(geometry)
    with stored_config(f"{state['path']}: the checkpoint's config"):  # only known on load:
        data = load_task_data(cfg) if with_data else None  # a .pt's own x_test, ...
    spec = state["task"]
    with stored_config(""):  # checkpoint_config warned about what it cannot use
        model = build_model(cfg, geometry, tuple(spec["sample_shape"]), spec["num_classes"])
    if state.get("shards") is not None:  # a column-sharded run: the rows from its shards
        from .parallel.checkpoint import load_run_shards

        model.load_state_dict(state["model"], strict=False)
        load_run_shards(state, model)  # the whole sheet, in this process
        _refuse_diverged(model.state_dict(), state["path"])
    else:
        model.load_state_dict(state["model"])
    return model.eval(), model.columnformer.geometry, cfg, data


def _refuse_diverged(state: dict[str, Any], path: Any) -> None:
    bad = first_nonfinite(state.items())
    if bad is not None:
        raise ValueError(f"{path} holds a diverged model: parameter {bad}. Use a checkpoint "
                         f"from before the divergence, or retrain with a lower optim.lr.")


def checkpoint_config(state: dict[str, Any], groups: tuple[str, ...]) -> dict[str, Any]:
    """The config a checkpoint was trained with (``state["config"]``), old keys under their
    new names (:func:`colgraph.config.upgrade_config`, silently: a checkpoint cannot be
    renamed), with the groups that will be read (``groups``, e.g. ``("model", "task")``)
    validated as a run's own config is. A plain dict; every problem is reported at once,
    naming the checkpoint's config.

    Only the groups a use reads are validated: a setting of another group that a newer
    colgraph refuses cannot make an old run unloadable (nor a registered geometry or data
    set of the training session missing here).
    """
    config, path = state["config"], state.get("path", "the checkpoint")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: the checkpoint's config is a {type(config).__name__}, not "
                         f"a mapping of config groups. The file was edited or damaged: use the "
                         f"run's last good checkpoint or retrain.")
    problems = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            config = upgrade_config({**{new: {} for new in RENAMED.values()}, **config})
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        problems.append(f"its renamed groups cannot be read ({e}).")
    for group in groups:
        if not isinstance(config.get(group), dict):
            problems.append(f"group {group} is missing or not a mapping (got "
                            f"{config.get(group)!r}).")
            continue
        try:  # saved before a check existed: a setting it could not use is warned about
            with stored_config(f"{path}: the checkpoint's config"):
                from_node(GROUPS[group], config[group], group)
        except (TypeError, ValueError) as e:
            problems += problems_of(e)
    if problems:
        raise ValueError(f"{path}: the checkpoint's config has "
                         f"{'a problem' if len(problems) == 1 else f'{len(problems)} problems'}"
                         f" (was the file edited?):\n  - " + "\n  - ".join(problems))
    return config


def as_omegaconf(config: dict[str, Any], path: Any = "the checkpoint") -> Any:
    """A checkpoint's plain config on the current schema (settings added since the run was
    trained take their defaults), every string kept as the literal text it was: the stored
    config was resolved when it was written, so a ``${...}`` in it is text (a literal the
    run used, or an edit), never an interpolation to resolve now (``${oc.env:...}`` would
    read this machine's environment)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.merge(OmegaConf.structured(Config), _literal(config))
    except OmegaConfBaseException as e:
        raise ValueError(f"{path}: the checkpoint's config does not fit this colgraph's "
                         f"config schema: {str(e).splitlines()[0]}. Was the file edited, or "
                         f"written by another colgraph version?") from None


def _literal(obj: Any) -> Any:
    """``obj`` with every ``${`` in its strings escaped for OmegaConf (``\\${``, and the
    backslashes before it doubled), so that it reads back as the same text."""
    if isinstance(obj, str):
        return re.sub(r"(\\*)\$\{", lambda m: "\\" * (2 * len(m.group(1)) + 1) + "${", obj)
    if isinstance(obj, dict):
        return {k: _literal(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_literal(v) for v in obj]
    return obj


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
