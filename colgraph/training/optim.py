"""The optimizer and learning-rate schedule of a run: AdamW with weight-decay groups chosen
by parameter NAME, linear warm-up then cosine decay."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..config import to_container
from .logs import log

__all__ = ["NO_DECAY", "param_groups", "lr_lambda", "build_optimizer", "apply_optim_settings"]

NO_DECAY = ("bias", "edge_bias", "column_embed", "step_embed")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups by parameter NAME: decay projection weights only.

    Biases, norm scales, column / step embeddings and the per-edge bias (the learned
    connectivity) are not decayed, whatever their number of dimensions.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        last, parent = name.rsplit(".", 1)[-1], name.rsplit(".", 1)[0] if "." in name else ""
        skip = last in NO_DECAY or "norm" in parent.rsplit(".", 1)[-1]
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(total_steps: int, warmup_steps: int, min_ratio: float):
    """The learning-rate factor at a step: linear warm-up, then cosine down to
    ``min_ratio``."""
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def build_optimizer(model: nn.Module, cfg: Any, steps_per_epoch: int
                    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over :func:`param_groups` and its warm-up + cosine schedule (``cfg.optim``,
    over ``cfg.train.epochs`` epochs of ``steps_per_epoch`` steps)."""
    optimizer = torch.optim.AdamW(param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                                  betas=tuple(cfg.optim.betas), fused=cfg.optim.fused)
    total_steps = steps_per_epoch * cfg.train.epochs
    warmup = max(1, int(cfg.optim.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(total_steps, warmup, cfg.optim.min_lr_ratio))
    return optimizer, scheduler


def apply_optim_settings(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                         cfg: Any, theirs: dict[str, Any], step: int) -> None:
    """On resume, the current config's optimizer settings apply from the resume step on
    (loading the optimizer's state would silently bring back the run's own); say which
    changed."""
    ours = to_container(cfg.optim)
    changed = {k: (theirs.get(k), ours[k]) for k in ("lr", "weight_decay", "betas")
               if theirs.get(k) != ours[k]}
    scheduler.base_lrs = [cfg.optim.lr] * len(optimizer.param_groups)
    factor = scheduler.lr_lambdas[0](step)
    fresh = param_groups(model, cfg.optim.weight_decay)  # [decayed, not decayed]
    for group, new in zip(optimizer.param_groups, fresh):
        group["initial_lr"], group["lr"] = cfg.optim.lr, cfg.optim.lr * factor
        group["betas"] = tuple(cfg.optim.betas)
        group["weight_decay"] = new["weight_decay"]
    if changed and (not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0):
        log.info("Resuming with changed optimizer settings (applied from step "
                 f"{step}): " + ", ".join(f"optim.{k}: {a} -> {b}" for k, (a, b) in changed.items()))
