"""Training curves from a run's ``metrics.csv``: written as ``training.png`` at the end of
training and by ``scripts/analyze.py``."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

__all__ = ["read_run_csv", "read_metrics", "plot_training"]

#: panel titles for the tasks' metric names (``Task.metric``: ``acc`` for classification,
#: ``mse`` for masked image modelling and next-frame prediction)
LABELS = {"acc": "accuracy", "mse": "mean squared error"}


def read_run_csv(run: str | Path, name: str, what: str, hint: str, empty: str
                 ) -> dict[str, np.ndarray]:
    """The columns of a run's CSV log (``RUN_DIR/<name>``, or the file itself) as float
    arrays; empty or non-numeric cells are NaN. Errors: "No <what> at <path>: <hint>" for a
    missing file, "<path> <empty>" for one without rows."""
    path = Path(run)
    if path.is_dir():
        path = path / name
    if not path.is_file():
        raise FileNotFoundError(f"No {what} at {path}: {hint}")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path} {empty}")

    def number(text):
        try:
            return float(text)
        except (TypeError, ValueError):
            return math.nan

    return {k: np.array([number(r.get(k)) for r in rows]) for k in rows[0]}


def read_metrics(path: str | Path) -> dict[str, np.ndarray]:
    """The columns of a ``metrics.csv`` (a run directory or the file) as float arrays
    (empty cells, e.g. epochs without evaluation, are NaN)."""
    return read_run_csv(path, "metrics.csv", "metrics file",
                        "train a run first (it writes RUN_DIR/metrics.csv).", "holds no rows yet.")


def _headline(columns: dict[str, np.ndarray]) -> list[str]:
    """The task's test metrics besides the loss (``test_acc``, ``test_mse``, ...)."""
    return [k for k in columns if k.startswith("test_") and k != "test_loss"
            and np.isfinite(columns[k]).any()]


def plot_training(run_or_csv: str | Path, path: str | Path) -> Path:
    """Loss (train and test), the task's headline metrics (train and test), the
    attention-weighted wiring length and the learning rate (and the edge count when
    plasticity changed it) against epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = read_metrics(run_or_csv)
    epoch = m["epoch"]
    panels = [("loss", [("train_loss", "train"), ("test_loss", "test")])]
    for k in _headline(m):
        name = k[len("test_"):]
        panels.append((LABELS.get(name, name), [(f"train_{name}", "train"), (k, "test")]))
    if "wiring_length" in m:
        panels.append(("attention-weighted wiring length", [("wiring_length", "test")]))
    if "lr" in m:
        panels.append(("learning rate", [("lr", "schedule")]))
    edges = m.get("edges")
    if edges is not None and np.isfinite(edges).any() and np.nanmax(edges) > np.nanmin(edges):
        panels.append(("edges (plasticity)", [("edges", "edges")]))
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.2 * rows), squeeze=False)
    for ax, (title, lines) in zip(axes.flat, panels):
        for key, label in lines:
            if key in m and np.isfinite(m[key]).any():
                ok = np.isfinite(m[key])
                ax.plot(epoch[ok], m[key][ok], "o-" if ok.sum() < 30 else "-", ms=3,
                        label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        if len(lines) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    source = Path(run_or_csv)
    fig.suptitle(f"Training curves ({source.name if source.is_dir() else source.parent.name})",
                 fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
