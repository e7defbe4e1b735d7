"""A sheet on a real cortex: the left hemisphere of fsaverage5 (10,242 vertices), offline.

    pip install -e ".[surface]"     # nibabel + nilearn (nilearn ships fsaverage5)
    python examples/cortical_surface.py --epochs 1

1. reads nilearn's fsaverage5 pial surface with ``from_surface`` (one column per vertex, the
   mesh's edges with their lengths along the surface, in mm);
2. makes the 64 vertices nearest the occipital pole the input area (digits land on them
   through the fitted input map) and the 16 nearest the frontal pole the output area;
3. writes the sheet as GraphML and trains on it with ``scripts/train.py geometry=graph``,
   adding exponential-distance-rule long-range inputs through ``geometry.wiring`` (the
   mesh alone is ~60 hops from pole to pole);
4. exports the learned connectome, writes per-vertex metrics (receptive-field size,
   in-strength, community) as GIFTI (``metrics.func.gii``) and draws the receptive-field
   size on the inflated surface with nilearn (``receptive_field.png``).

Everything is written into ``--out`` (default ``runs/cortical_surface``).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def hemisphere(n_in: int = 64, n_out: int = 16):
    """fsaverage5's left pial surface as a geometry, with input / output areas at the poles."""
    from nilearn import datasets

    from colgraph.geometry import from_surface

    mesh = datasets.fetch_surf_fsaverage("fsaverage5")  # files inside nilearn: no download
    verts = from_surface(mesh["pial_left"]).pos.numpy()
    y = verts[:, 1]  # posterior (occipital) -> anterior (frontal)
    areas = {"input": np.argsort(y)[:n_in], "output": np.argsort(-y)[:n_out],
             "sheet": np.arange(len(verts))}
    return from_surface(mesh["pial_left"], areas=areas, name="fsaverage5-lh"), mesh


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None, help="stop training early")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "cortical_surface")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from colgraph.geometry import write_geometry

    geo, mesh = hemisphere()
    graph = args.out / "fsaverage5_lh.graphml"
    write_geometry(geo, graph)  # GraphML with x / y / z: what geometry=graph reads
    print(geo.summary())

    from colgraph.geometry import exponential

    wired = geo.with_wiring(exponential(m=4, lam=30.0))  # what geometry.wiring adds below
    hops = wired.check_reachable("input", "output", steps=64)
    print(f"wrote {graph}; with long-range wiring the output is {hops} hops from the input")
    run_dir = args.out / "run"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "geometry=graph",
                    f"geometry.path={graph}", "geometry.wiring.long_range=4",
                    "geometry.wiring.lam=30.0", f"model.steps={hops}", "model.channels=16",
                    "model.heads=1", "model.bias_sigma=10.0",  # mm: mesh edges are ~3 mm
                    f"train.epochs={args.epochs}", "train.batch_size=32",
                    *([f"train.max_steps={args.max_steps}"] if args.max_steps else []),
                    f"hydra.run.dir={run_dir}"], check=True)

    from colgraph.connectome import node_metrics, to_networkx
    from colgraph.geometry import write_vertex_data

    G = to_networkx(run_dir, loader="test", max_batches=1)
    metrics = node_metrics(G)
    gifti = write_vertex_data({k: metrics[k] for k in ("receptive_field", "in_strength",
                                                       "community")},
                              args.out / "metrics.func.gii")
    rf = metrics["receptive_field"]
    print(f"wrote {gifti}: receptive-field size {np.nanmedian(rf):.2f} mm (median), "
          f"{int(metrics['community'].max()) + 1} communities")

    import matplotlib

    matplotlib.use("Agg")
    from nilearn import plotting

    fig = plotting.plot_surf_stat_map(mesh["infl_left"], rf, bg_map=mesh["sulc_left"],
                                      hemi="left", view="lateral", colorbar=True,
                                      cmap="viridis", title="receptive-field size (mm)")
    fig.savefig(args.out / "receptive_field.png", dpi=120)
    print(f"wrote {args.out / 'receptive_field.png'}")


if __name__ == "__main__":
    main()
