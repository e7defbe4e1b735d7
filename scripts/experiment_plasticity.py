"""Learned wiring on digits: does plasticity keep accuracy while wiring gets shorter?

    python scripts/experiment_plasticity.py --out BENCHMARKS.md --figure docs/plasticity.png

Runs the main job (digits, 3-area stack, k = 16) with the listed overrides, one after the
other (never in parallel: 2 cores), and writes a table of test accuracy, attention-weighted
edge length (on the CURRENT wiring), edge count and time per run, plus a figure of the
wiring before and after plasticity (each column's strongest inputs, coloured by attention).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from colgraph import setup_process

sys.path.insert(0, str(Path(__file__).parent))
from _report import compose, write_section  # noqa: E402

RUNS = {
    "static knn (default)": [],
    "knn + plasticity=rigl": ["plasticity=rigl"],
    "knn + plasticity=wiring": ["plasticity=wiring"],
    "uniform random k=16, static": ["geometry.wiring.rule=uniform"],
    "uniform random k=16 + plasticity=set": ["geometry.wiring.rule=uniform", "plasticity=set"],
    "uniform random k=16 + plasticity=rigl": ["geometry.wiring.rule=uniform", "plasticity=rigl"],
    "uniform random k=16, static, wiring cost 0.5": ["geometry.wiring.rule=uniform",
                                                     "wiring_cost.weight=0.5"],
    "+experiment=learned_wiring": ["+experiment=learned_wiring"],
    "knn, area1 grown 6x6 -> 11x11 at step 230": ["scale.area=area1", "scale.at_step=230"],
}
FIGURE_RUN = "+experiment=learned_wiring"


def figure(before, after, path: Path) -> None:
    """Each column's strongest input before / after training with plasticity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from mpl_toolkits.mplot3d.art3d import Line3DCollection

    fig = plt.figure(figsize=(14, 6))
    vmax = max(float(before[1][0].edge_length.max()), float(after[1][0].edge_length.max()))
    for i, (title, (geo, weight)) in enumerate([before, after]):
        ax = fig.add_subplot(1, 2, i + 1, projection="3d")
        src, dst = geo.edge_index.numpy()
        w = weight.numpy()
        order = np.lexsort((-w, dst))
        first = np.r_[True, dst[order][1:] != dst[order][:-1]]
        top = order[first]  # strongest input of every column
        pos = geo.pos.numpy()
        seg = np.stack([pos[src[top]], pos[dst[top]]], 1)
        ln = geo.edge_length.numpy()[top]
        lc = Line3DCollection(seg, cmap="viridis", linewidths=1.0)
        lc.set_array(ln)
        lc.set_clim(0, vmax)  # one colour scale for both panels
        ax.add_collection3d(lc)
        ax.scatter(*pos.T, s=4, c="0.3")
        ax.set_title(f"{title}\n{geo.num_edges} edges, strongest input per column "
                     f"(mean length {ln.mean():.2f})", fontsize=9)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_zlabel("area (z)")
        fig.colorbar(lc, ax=ax, shrink=0.6, pad=0.12, label="edge length (geometry units)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="*", default=list(RUNS), help="names from RUNS")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="BENCHMARKS.md to update")
    p.add_argument("--figure", type=Path, default=None, help="wiring before/after PNG")
    args = p.parse_args()

    import torch

    from colgraph.connectome import edge_data
    from colgraph.data import iterate_batches
    from colgraph.geometry import Geometry
    from colgraph.checkpoint import load_checkpoint
    from colgraph.restore import build_model, load_model
    from colgraph.training import train

    rows = []
    for name in args.runs:
        overrides = RUNS[name] + [f"train.seed={args.seed}", "train.progress=false",
                                  "train.tensorboard=false"]
        with tempfile.TemporaryDirectory() as run_dir:
            t0 = time.perf_counter()
            m = train(compose(overrides), run_dir)
            elapsed = time.perf_counter() - t0
            model, _, _, data = load_model(run_dir)
            geo0 = Geometry.from_state_dict(load_checkpoint(run_dir)["geometry"])  # as built
            cf = model.columnformer
            rows.append((name, m["test_acc"], m["wiring_length"], cf.edges.num_edges,
                         float(cf.edge_length.mean()), elapsed, cf.num_columns))
            print(f"{name}: {rows[-1]}", flush=True)
            if args.figure and name == FIGURE_RUN:
                x = [b for b, _ in iterate_batches(data.x_test, data.y_test, 256)]
                after = edge_data(model, x)
                # before: the geometry's wiring with its prior weights softmax(initial bias)
                fresh = build_model(compose(overrides), geo0, data.sample_shape,
                                    data.num_classes)
                before = edge_data(fresh, x)
                figure(("before: uniform random wiring, untrained sheet",
                        (geo0, before.attention.mean(0))),
                       ("after: plasticity=wiring + wiring cost 0.5, trained",
                        (cf.geometry, after.attention.mean(0))), args.figure)
    base = {r[0]: r for r in rows}
    lines = ["| run | test acc | attention-weighted length | columns | edges | mean edge length "
             "| time |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r[0]} | {100 * r[1]:.1f}% | {r[2]:.3f} | {r[6]} | {r[3]} | "
                     f"{r[4]:.2f} | {r[5]:.0f} s |")
    text = ("## Learned wiring on digits (`scripts/experiment_plasticity.py`)\n\n"
            f"Main job (digits, stack 8-6-4, 16 inputs per column, wiring cost 0.1 unless "
            f"stated, 20 epochs), seed "
            f"{args.seed}, {torch.get_num_threads()} threads; attention-weighted length is "
            f"measured on each run's final wiring.\n\n" + "\n".join(lines))
    from colgraph.geometry import build_geometry
    from torch_geometric.utils import scatter

    g = build_geometry(compose([]).geometry)
    floor = float(scatter(g.edge_length, g.edge_index[1], 0, dim_size=g.num_columns,
                          reduce="min").mean())
    text += (f"\n\nShortest possible attention-weighted length on the k-NN sheet (every column "
             f"attending only to its nearest input): {floor:.3f}.")
    for static, plastic in (("uniform random k=16, static", FIGURE_RUN),
                            ("uniform random k=16, static, wiring cost 0.5", FIGURE_RUN),
                            ("static knn (default)", "knn + plasticity=wiring"),
                            ("static knn (default)", "uniform random k=16 + plasticity=rigl")):
        if static in base and plastic in base:
            s_, w = base[static], base[plastic]
            text += (f"\n\n{plastic} vs {static}: accuracy {100 * (w[1] - s_[1]):+.1f} points, "
                     f"attention-weighted length {100 * (w[2] / s_[2] - 1):+.0f}%.")
    print(text)
    if args.out:
        write_section(args.out, "plasticity-digits", text)


if __name__ == "__main__":
    setup_process()  # threads' wait, tcmalloc where installed (re-executes once): first
    main()
