"""A hexagonal sheet next to the fly's optic lobe, column for column.

    pip install --no-deps flyvis     # ships the optic lobe's connectome (no download; colgraph
                                     # reads its data file, none of flyvis's dependencies)
    python examples/fly_optic_lobe.py --epochs 5

1. trains a hexagonal sheet (``geometry=hex``: the 91 columns within 5 steps of the centre,
   each wired to the columns within 3 steps) on digits with ``scripts/train.py`` (or takes
   ``--run``);
2. reads the fly optic lobe's connectome as the ``flyvis`` package ships it (Lappalainen et
   al. 2024, from the FIB-25 / FIB-19 reconstructions), reduced to one node per column on
   the same hexagonal lattice (:func:`colgraph.connectome.fly_optic_lobe`);
3. compares them: the same metrics and distributions (``colgraph.connectome.compare``,
   written as ``compare.json`` / ``compare.png`` into ``--out``), and, since both live on
   the same columns, edge for edge: the Spearman correlation of the sheet's attention with
   the fly's synapse counts over the column pairs both have, overall and per offset length.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXTENT, RADIUS = 5, 3.1  # 91 columns; inputs from the columns within 3 steps


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", type=Path, default=None, help="a trained run (default: train one)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--nulls", type=int, default=5, help="null models per null comparison")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "fly_optic_lobe")
    args = p.parse_args()

    from colgraph.connectome import (comparison_table, fly_optic_lobe, to_networkx,
                                     write_comparison)

    try:  # first: a missing package stops before any training
        fly = fly_optic_lobe(extent=EXTENT)
    except ImportError as e:
        raise SystemExit(str(e)) from None
    print(f"reference: {fly.graph['name']}: {fly.number_of_nodes()} columns, "
          f"{fly.number_of_edges()} column pairs, {fly.graph['synapses']:.0f} synapses")
    run = args.run
    if run is None:
        run = args.out / "run"
        subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "geometry=hex",
                        f"geometry.extent={EXTENT}", f"geometry.wiring.r={RADIUS}",
                        f"train.epochs={args.epochs}",
                        *([f"train.max_steps={args.max_steps}"] if args.max_steps else []),
                        f"hydra.run.dir={run}"], check=True)
    learned = to_networkx(run, loader="test")
    result = write_comparison(learned, fly, args.out, names=("sheet", "fly optic lobe"),
                              n_null=args.nulls)
    print(comparison_table(result))

    from scipy.stats import spearmanr  # edge for edge: the same columns on both

    shared = [(u, v) for u, v in learned.edges if fly.has_edge(u, v)]
    att = np.array([learned.edges[e]["weight"] for e in shared])
    syn = np.array([fly.edges[e]["weight"] for e in shared])
    length = np.array([learned.edges[e]["length"] for e in shared])
    print(f"column pairs: sheet {learned.number_of_edges()}, fly {fly.number_of_edges()}, "
          f"both {len(shared)}; attention vs synapses: Spearman rho "
          f"{spearmanr(att, syn)[0]:+.3f}")
    for d in np.unique(np.round(length, 3)):
        on = np.isclose(length, d, atol=1e-3)
        if on.sum() > 2 and np.ptp(att[on]) > 0 and np.ptp(syn[on]) > 0:
            print(f"  offset length {d:.2f}: {on.sum()} pairs, rho "
                  f"{spearmanr(att[on], syn[on])[0]:+.3f}")
    for note in result["notes"]:
        print("note:", note)
    print(f"wrote {args.out / 'compare.json'} and {args.out / 'compare.png'}")


if __name__ == "__main__":
    main()
