"""Quickstart: build a sheet, train it on digits from Python, look at where attention flows.

    python examples/quickstart.py --epochs 5       # writes runs/quickstart.png

Uses the library directly (no hydra): a three-area stack, a Columnformer with a wiring cost,
and a figure of the sheet (``colgraph.connectome.plot_sheet``) with each column's strongest
incoming edges as arrows coloured by how much attention they carry, with a colour bar.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from colgraph import ColumnformerConfig
from colgraph.config import DataConfig, TaskConfig
from colgraph.connectome import plot_sheet, to_networkx
from colgraph.data import iterate_batches, load_data
from colgraph.geometry import knn, stack
from colgraph.objectives import wiring_cost
from colgraph.tasks import ImageClassification
from colgraph.training import evaluate

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--wiring-weight", type=float, default=0.1)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "quickstart.png")
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
    # the connectome: attention on 256 test images, drawn with each column's strongest
    # inputs as arrows coloured by attention (the stack's areas side by side)
    G = to_networkx(model, loader=[(data.x_test[:256], data.y_test[:256])])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_sheet(G, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
