"""Train a Columnformer: ``python scripts/train.py [group=option] [key=value ...]``.

The same command as ``colgraph-train`` (:func:`colgraph.cli.train`): hydra over
:func:`colgraph.training.train`; the run directory (checkpoint, metrics, the composed
config in ``.hydra/``) is hydra's output directory.
"""
from colgraph.cli import setup_process, train

if __name__ == "__main__":
    setup_process()  # threads' wait, tcmalloc where installed (re-executes once)
    train()
