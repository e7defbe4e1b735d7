"""Where a run's weights come from besides a fresh initialisation: ``train.resume`` (continue
a run: everything) or ``train.init_from`` (start from another run's encoder and sheet).
Each is loaded and checked against the config here, before data is loaded or a model built.
"""
from __future__ import annotations

from typing import Any

from ..checkpoint import load_checkpoint, require_keys
from ..config import to_container
from ..geometry import Geometry, build_geometry
from ..model import ColumnformerConfig
from ..restore import checkpoint_config
from ..tasks import TASKS, Task, task_class

__all__ = ["PRETRAINED", "load_sources", "check_resume_geometry", "architecture_differences",
           "check_init_source", "init_from"]

PRETRAINED = ("encoder.", "columnformer.")  # what train.init_from carries over / freeze fixes
ARCHITECTURE_TASK_KEYS = ("name", "patch_size", "window", "decoder_area")
# what each use reads of a checkpoint
RESUME_KEYS = ("config", "geometry", "geometry_fingerprint", "model", "optimizer", "scheduler",
               "epoch", "step")
INIT_KEYS = ("config", "geometry", "geometry_fingerprint", "model", "task")


def load_sources(cfg: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The checkpoints of ``train.resume`` and ``train.init_from`` (``None`` when unset; a
    resumed run ignores ``init_from``), each refused when it cannot serve: a weights-only
    export cannot be resumed, a checkpoint of other model settings neither, an
    ``init_from`` source must read the same kind of samples on the same sheet. The config
    each was trained with is validated (the groups read here: see
    :func:`colgraph.restore.checkpoint_config`) and stored back, old keys renamed."""
    resume = load_checkpoint(cfg.train.resume) if cfg.train.resume else None
    if resume is not None and resume.get("weights_only"):
        raise ValueError(f"train.resume={cfg.train.resume} is a weights-only export (no "
                         f"optimizer or RNG state): it cannot continue a run. Start from its "
                         f"weights with train.init_from={cfg.train.resume} instead.")
    source = (load_checkpoint(cfg.train.init_from)
              if cfg.train.init_from and resume is None else None)
    if source is not None:
        require_keys(source, INIT_KEYS, "start a run from its weights (train.init_from)")
        source["config"] = checkpoint_config(source, ("model",))
        check_init_source(source, cfg)
    if resume is not None:
        require_keys(resume, RESUME_KEYS, "resume a run (train.resume)")
        resume["config"] = checkpoint_config(resume, ("model", "task", "optim"))
        train = resume["config"].get("train")
        batch_size = train.get("batch_size") if isinstance(train, dict) else None
        if type(batch_size) is not int or batch_size < 1:
            raise ValueError(f"{resume['path']}: the checkpoint's config has a problem: "
                             f"train.batch_size must be an integer >= 1 (got {batch_size!r}). "
                             f"Was the file edited?")
        differ = architecture_differences(resume["config"], cfg)
        if differ:
            raise ValueError(f"Cannot resume from {resume['path']}: it was trained with other "
                             f"model settings: {differ}. Resume with the run's own settings "
                             f"(its .hydra/config.yaml), or start a new run with "
                             f"train.init_from to reuse its weights.")
    return resume, source


def check_resume_geometry(resume: dict[str, Any], cfg: Any, geometry: Geometry) -> None:
    """Refuse to resume a run on another sheet than the one it was trained on."""
    if resume["geometry_fingerprint"] == geometry.fingerprint():
        return
    old = Geometry.from_state_dict(resume["geometry"])
    hint = (" A geometry=graph run from before geometry.wiring applied to graph files "
            "used the file's edges only: resume it with geometry.wiring.rule=none."
            if cfg.geometry.name == "graph" and cfg.geometry.wiring.rule != "none" else "")
    raise ValueError(f"Cannot resume from {resume['path']}: it was trained on {old}, but "
                     f"the current config builds {geometry}. Resume with the run's own "
                     f"geometry settings (see its .hydra/config.yaml).{hint}")


def check_init_source(source: dict[str, Any], cfg: Any) -> None:
    """Refuse a ``train.init_from`` checkpoint whose samples or sheet do not fit ``cfg``."""
    spec = source["task"]
    path = source["path"]
    want = task_class(cfg.task.name)
    have = task_class(spec["name"]) if spec["name"] in TASKS else None
    if have is None or have.modality != want.modality:
        raise ValueError(f"train.init_from={path} holds a '{spec['name']}' model, whose "
                         f"encoder reads {have.modality if have else 'unknown'} samples, but "
                         f"task={cfg.task.name} reads {want.modality}s. Start from a run of a "
                         f"{want.modality} task.")
    differ = architecture_differences(source["config"], cfg, task=False)
    if differ:
        raise ValueError(f"train.init_from={path} was built with other model settings: "
                         f"{differ}. Use the pre-training run's model settings.")
    geometry = build_geometry(cfg.geometry)
    if source["geometry_fingerprint"] != geometry.fingerprint():
        old = Geometry.from_state_dict(source["geometry"])
        raise ValueError(f"train.init_from={path} was trained on {old}, but this config "
                         f"builds {geometry}. Use the pre-training run's geometry settings.")


def architecture_differences(theirs: dict[str, Any], cfg: Any, task: bool = True) -> str:
    """The model (and, with ``task``, task) settings that shape the parameters and differ
    between a checkpoint's config and ``cfg``, as ``key=theirs (here ours)``; '' if none."""
    ours = to_container(cfg)
    pairs = [("model", k) for k in set(theirs["model"]) | set(ours["model"])
             if k not in ColumnformerConfig.RUNTIME]
    if task:
        pairs += [("task", k) for k in ARCHITECTURE_TASK_KEYS]
    differ = sorted((g, k) for g, k in pairs
                    if theirs.get(g, {}).get(k) != ours.get(g, {}).get(k))
    return ", ".join(f"{g}.{k}={theirs.get(g, {}).get(k)} (here {ours.get(g, {}).get(k)})"
                     for g, k in differ)


def init_from(model: Task, source: dict[str, Any]) -> None:
    """Copy the encoder and the sheet (its current wiring included) of a checkpoint into
    ``model``; the readout stays freshly initialised."""
    shape = tuple(source["task"]["sample_shape"])
    if shape != model.sample_shape:
        raise ValueError(f"train.init_from={source['path']} was trained on samples of shape "
                         f"{list(shape)}, this data set has {list(model.sample_shape)}: its "
                         f"encoder does not fit. Pre-train on the same kind of data.")
    state = {k: v for k, v in source["model"].items() if k.startswith(PRETRAINED)}
    wanted = {k for k in model.state_dict() if k.startswith(PRETRAINED)}
    missing = sorted(wanted - set(state))
    if missing:
        raise ValueError(f"train.init_from={source['path']} lacks {missing[:3]}"
                         f"{' ...' if len(missing) > 3 else ''}: its model has another "
                         f"architecture. Use the pre-training run's model settings.")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise ValueError(f"train.init_from={source['path']} does not fit this model (other "
                         f"model.* or sample shape?): {e}") from None
