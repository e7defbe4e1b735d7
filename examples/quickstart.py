"""Quickstart: build a sheet, train it on digits from Python, look at where attention flows.

    python examples/quickstart.py --epochs 5 --out quickstart.png

Uses the library directly (no hydra): a three-area stack, a Columnformer with a wiring cost,
and a figure of the sheet with each column's strongest incoming edges, coloured by how much
attention they carry.
"""
from __future__ import annotations

import argparse

import torch

from colgraph import ColumnformerConfig
from colgraph.config import DataConfig, TaskConfig
from colgraph.data import iterate_batches, load_data
from colgraph.geometry import knn, stack
from colgraph.objectives import wiring_cost
from colgraph.tasks import ImageClassification
from colgraph.training import evaluate


def plot_attention(geo, attention, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    att = torch.stack(attention).mean((0, 2))  # (E,): mean over steps and heads
    src, dst = geo.edge_index
    # keep each column's two strongest inputs so the figure stays readable
    keep = torch.zeros_like(att, dtype=torch.bool)
    for t in range(geo.num_columns):
        idx = (dst == t).nonzero().flatten()
        keep[idx[att[idx].topk(min(2, idx.numel())).indices]] = True
    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    pos = geo.pos.numpy()
    cmap = plt.get_cmap("viridis")
    top = float(att[keep].max())
    for e in keep.nonzero().flatten().tolist():
        s, t = int(src[e]), int(dst[e])
        w = float(att[e]) / top
        ax.plot(*zip(pos[s], pos[t]), color=cmap(w), alpha=0.3 + 0.7 * w, lw=0.5 + 1.5 * w)
    for name in [a for a in geo.areas if a.startswith("area")]:
        p = pos[geo.area(name).numpy()]
        ax.scatter(p[:, 0], p[:, 1], p[:, 2], s=12, label=name)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("area (z)")
    ax.legend(loc="upper left")
    ax.set_title("Strongest incoming edges per column (colour = attention)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--wiring-weight", type=float, default=0.1)
    p.add_argument("--out", default="quickstart.png")
    args = p.parse_args()
    torch.manual_seed(0)

    geo = stack([8, 6, 4], spacing=2.0, wiring=knn(k=16))
    print(geo)
    data = load_data(DataConfig(name="digits"))
    model = ImageClassification(geo, ColumnformerConfig(channels=32, steps=3),
                                TaskConfig(name="classify_image"), data.sample_shape,
                                data.num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    cf = model.columnformer
    for epoch in range(args.epochs):
        model.train()
        for xb, yb in iterate_batches(data.x_train, data.y_train, 64, shuffle=True):
            res = model(xb, yb)  # a TaskOutput: loss, stats, prediction, sheet output
            loss = res.loss + args.wiring_weight * wiring_cost(res.out.attention, cf.edge_index,
                                                               cf.edge_length)
            opt.zero_grad()
            loss.backward()
            opt.step()
        m = evaluate(model, data.x_test, data.y_test, 256, torch.device("cpu"))
        print(f"epoch {epoch + 1}: test acc {m['test_acc']:.3f}, "
              f"wiring length {m['wiring_length']:.3f}")
    model.eval()
    with torch.no_grad():
        out = model.sheet(data.x_test[:256])
    plot_attention(geo, out.attention, args.out)


if __name__ == "__main__":
    main()
