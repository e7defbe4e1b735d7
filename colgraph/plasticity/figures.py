"""The wiring's history over training, drawn from a run's ``plasticity.csv``."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["read_history", "plot_history"]


def read_history(run: str | os.PathLike) -> dict[str, list[float]]:
    """Columns of ``RUN_DIR/plasticity.csv`` (one row per prune / grow update) as floats."""
    from ..curves import read_run_csv

    columns = read_run_csv(run, "plasticity.csv", "plasticity log",
                           "the run trained with plasticity=none, or is not a colgraph run "
                           "directory.", "has no updates yet.")
    return {k: v.tolist() for k, v in columns.items()}


def plot_history(run: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Edge count, edges removed / added, and lengths at every update, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = read_history(run)
    step = h["step"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    axes[0].plot(step, h["edges"], marker=".")
    axes[0].set(title="edges E", xlabel="optimizer step", ylabel="edges")
    axes[0].set_ylim(bottom=0)
    axes[1].bar(step, h["removed"], width=max(1.0, 0.4 * (step[-1] - step[0]) / len(step)),
                color="tab:red", label="removed")
    axes[1].plot(step, h["added"], "k.", label="added")
    axes[1].set(title="edges changed per update", xlabel="optimizer step", ylabel="edges")
    axes[1].legend(fontsize=8)
    axes[2].plot(step, h["mean_edge_length"], label="mean length, all edges")
    axes[2].plot(step, h["added_mean_length"], ".", label="mean length, new edges")
    axes[2].plot(step, h["attention_weighted_length"], label="attention-weighted length")
    axes[2].set(title="wiring length", xlabel="optimizer step",
                ylabel="length (geometry units)")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
