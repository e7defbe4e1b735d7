"""A learned connectome next to a real one: the C. elegans chemical synapse connectome.

    pip install wormneuroatlas          # ships published C. elegans connectomes (no download)
    python examples/compare_celegans.py --epochs 3

1. trains the default stack on digits with ``scripts/train.py`` (or takes ``--run``);
2. reads the adult C. elegans connectome of Witvliet et al. 2020 (dataset 8, chemical
   synapses, weight = synapse count) and the neuron positions of the NeuroPAL atlas (Yemini
   et al. 2021), both as shipped inside the ``wormneuroatlas`` package (Randi et al. 2023);
3. ``colgraph.connectome.compare``: the same metrics on both (degrees, strengths, EDR,
   modularity against nulls, small-world sigma / omega, rich club, reciprocity,
   weight-distance rho) with the KS distance between their distributions, written as
   ``compare.json`` and ``compare.png`` into ``--out`` (default ``runs/compare_celegans``).
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]


def celegans(dataset: str = "witvliet_2020_8", kind: str = "chemical") -> nx.DiGraph:
    """The worm's connectome as a DiGraph (pre -> post, ``weight`` = synapses), with ``pos``
    on the neurons whose position the atlas has (the others are left out)."""
    spec = importlib.util.find_spec("wormneuroatlas")
    if spec is None:
        raise SystemExit("This example reads the connectome shipped in the wormneuroatlas "
                         "package: pip install wormneuroatlas")
    data = Path(spec.submodule_search_locations[0]) / "data"  # read the files, import nothing
    lines = (data / "anatlas_neuron_positions.txt").read_text().splitlines()
    names = lines[0].lstrip("#").split()
    pos = {n: tuple(float(v) for v in row.split()) for n, row in zip(names, lines[1:])}
    G = nx.DiGraph(name=f"C. elegans ({dataset}, {kind})")
    with (data / f"aconnectome_{dataset}.csv").open(newline="") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            if r["type"] != kind or r["pre"] not in pos or r["post"] not in pos:
                continue
            if r["pre"] == r["post"]:
                continue  # autapses: colgraph's sheets have no self-edges by default
            w = float(r["synapses"])
            if G.has_edge(r["pre"], r["post"]):
                G.edges[r["pre"], r["post"]]["weight"] += w
            else:
                G.add_edge(r["pre"], r["post"], weight=w)
    for v in G:
        G.nodes[v]["pos"] = pos[v]
    return G


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", type=Path, default=None, help="a trained run (default: train one)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--nulls", type=int, default=5, help="null models per null comparison")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "compare_celegans")
    args = p.parse_args()

    worm = celegans()  # first: a missing package stops before any training
    print(f"reference: {worm.name}: {worm.number_of_nodes()} neurons, "
          f"{worm.number_of_edges()} connections, {sum(w for *_, w in worm.edges(data='weight')):.0f} "
          f"synapses")
    run = args.run
    if run is None:
        run = args.out / "run"
        subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"),
                        f"train.epochs={args.epochs}",
                        *([f"train.max_steps={args.max_steps}"] if args.max_steps else []),
                        f"hydra.run.dir={run}"], check=True)

    from colgraph.connectome import comparison_table, to_networkx, write_comparison

    learned = to_networkx(run, loader="test")
    result = write_comparison(learned, worm, args.out, names=("sheet", "C. elegans"),
                              n_null=args.nulls)
    print(comparison_table(result))
    for note in result["notes"]:
        print("note:", note)
    print(f"wrote {args.out / 'compare.json'} and {args.out / 'compare.png'}")


if __name__ == "__main__":
    main()
