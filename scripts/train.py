"""Train a Columnformer: ``python scripts/train.py [group=option] [key=value ...]``.

A thin hydra shell over :func:`colgraph.training.train`; the run directory (checkpoint,
metrics, the composed config in ``.hydra/``) is hydra's output directory.
"""
from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from colgraph.config import register_configs
from colgraph.tasks import task_class
from colgraph.training import train

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def main(cfg: DictConfig) -> float:
    metrics = train(cfg, HydraConfig.get().runtime.output_dir)
    return metrics["test_" + task_class(cfg.task.name).metric]  # for sweepers


if __name__ == "__main__":
    main()
