"""Benchmark partitioning a sheet across processes: edge cut, halo and balance of the Hilbert
curve ("sfc") and METIS ("metis") on the project's geometries, and partition time at 10^6.

    python scripts/bench_partition.py --out BENCHMARKS.md
    python scripts/bench_partition.py --scale 0.1 --large 0     # quicker: 10x fewer columns

Cut, halo and balance are deterministic (both methods are seeded); times are wall-clock for
the ``partition`` call alone, one run, on a shared machine (secondary). METIS needs
``pip install 'colgraph[metis]'``; without it its rows say so.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from colgraph import setup_process

PARTS = (2, 4, 8, 16)
METHODS = ("sfc", "metis")


def geometries(scale: float) -> dict:
    """Name -> builder of each benchmarked sheet, ~10^4 - 10^5 columns at ``scale = 1``."""
    from colgraph.geometry import (exponential, from_surface, grid, knn, random_sheet, sphere,
                                   stack, torus, union)

    def edr():  # configs/geometry/random.yaml and sphere.yaml: 8 local + 4 long-range inputs
        return union(knn(8), exponential(m=4, lam=4.0))

    def cortex(long_range: bool):
        """fsaverage5's left pial surface; the curve also drawn through the same vertices on
        the spherical surface (``pos``)."""
        from nilearn import datasets

        mesh = datasets.fetch_surf_fsaverage("fsaverage5")  # shipped inside nilearn: offline
        geo = from_surface(mesh["pial_left"])
        sphere_pos = from_surface(mesh["sphere_left"]).pos
        return (geo.with_wiring(exponential(m=2, lam=20.0)) if long_range else geo,
                {"sfc, sphere pos": {"method": "sfc", "pos": sphere_pos}})

    side = max(4, round(300 * math.sqrt(scale)))
    n = max(64, round(50_000 * scale))
    w = [max(2, round(x * math.sqrt(scale))) for x in (200, 141, 100)]
    return {
        f"grid {side}x{side}, knn 8": lambda: grid(side, wiring=knn(8)),
        f"torus {side}x{side}, knn 8": lambda: torus(side, wiring=knn(8)),
        f"stack {w}, knn 16": lambda: stack(w, wiring=knn(16)),
        "sphere, knn 8 + EDR 4": lambda: sphere(n, radius=math.sqrt(n / (4 * math.pi)),
                                                 wiring=edr()),
        "cortex (fsaverage5 pial, mesh edges)": lambda: cortex(False),
        "cortex + EDR 2 (lam 20 mm)": lambda: cortex(True),
        "random, knn 8 + EDR 4": lambda: random_sheet(n, wiring=edr()),
    }


def run(geo, parts: int, method: str, **options) -> dict:
    from colgraph.parallel import partition

    try:
        t0 = time.perf_counter()
        part = partition(geo, parts, method, **options)
        seconds = time.perf_counter() - t0
    except ImportError as e:
        return {"error": str(e).split(":")[0]}
    s = part.stats(geo)
    return {"cut": s.cut_fraction, "max_halo": s.max_halo_ratio, "halo": s.halo_fraction,
            "edge_balance": s.edge_balance, "column_balance": s.column_balance, "time": seconds}


def row(name: str, geo, parts: int, method: str, r: dict) -> str:
    head = f"| {name} | {geo.num_columns:,} | {geo.num_edges:,} | {parts} | {method} |"
    if "error" in r:
        return head + f" {r['error']} | | | | | |"
    return head + (f" {r['cut']:.2%} | {r['max_halo']:.3f} | {r['halo']:.3f} | "
                   f"{r['edge_balance']:.3f} | {r['column_balance']:.3f} | {r['time']:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="columns x scale (cortex: fixed)")
    p.add_argument("--large", type=int, default=1000, help="side of the 10^6 grid (0: skip)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    header = ("| geometry | columns | edges | P | method | edge cut | max halo / part | "
              "halo / N | edge balance | column balance | time (s) |")
    rows = [header, "|---|---|---|---|---|---|---|---|---|---|---|"]
    print(header, flush=True)
    ratios = {}  # geometry -> (metis / sfc edge cut, metis / sfc halo), mean over P
    for name, build in geometries(args.scale).items():
        geo, extra = build(), {}
        if isinstance(geo, tuple):  # (geometry, {label: partition options})
            geo, extra = geo
        variants = {m: {"method": m} for m in METHODS} | extra
        results = {}
        for parts in PARTS:
            for label, options in variants.items():
                results[parts, label] = r = run(geo, parts, **options)
                rows.append(row(name, geo, parts, label, r))
                print(rows[-1], flush=True)
        if all("error" not in r for r in results.values()):
            for label in [v for v in variants if v != "metis"]:
                ratios[name + ("" if label == "sfc" else f" ({label})")] = tuple(
                    sum(results[q, "metis"][k] / results[q, label][k] for q in PARTS) / len(PARTS)
                    for k in ("cut", "halo"))
    large = []
    if args.large:
        from colgraph.geometry import grid, knn

        t0 = time.perf_counter()
        geo = grid(args.large, wiring=knn(8))
        build = time.perf_counter() - t0
        print(f"built {geo} in {build:.1f} s", flush=True)
        large = [header, rows[1]]
        for parts in (2, 16):
            for method in METHODS:
                large.append(row(f"grid {args.large}x{args.large}, knn 8", geo, parts, method,
                                 run(geo, parts, method)))
                print(large[-1], flush=True)
    summary = ["| geometry | metis / sfc edge cut | metis / sfc halo |", "|---|---|---|"]
    summary += [f"| {k} | {c:.2f} | {h:.2f} |" for k, (c, h) in ratios.items()]
    print("\n".join(summary))
    if args.out:
        from _report import write_section

        import torch

        text = "\n".join([
            "## Partitioning a sheet across processes (`scripts/bench_partition.py`)", "",
            f"_`python scripts/bench_partition.py --scale {args.scale} --large {args.large}` "
            f"on {time.strftime('%Y-%m-%d')}: torch {torch.__version__}, one process, "
            f"`OMP_NUM_THREADS=1`._", "",
            "`colgraph.parallel.partition(geometry, P, method)` with the default work balance "
            "(in-degree + mean in-degree per column). Edges belong to their TARGET's part. "
            "*Edge cut*: edges whose source lies in another part. *Halo* of a part: the "
            "distinct remote source columns of its edges, i.e. the column states (keys and "
            "values) it receives each step; *max halo / part*: the largest halo over the "
            "part's own column count (the busiest receiver), *halo / N*: all halos over the "
            "number of columns (the states sent per step, as a fraction of the sheet). "
            "*Balance*: max / mean over parts (1 = equal). EDR: exponential-distance-rule "
            "long-range inputs (`exponential(m, lam)`), as in `configs/geometry/random.yaml` "
            "and `sphere.yaml`. Cut, halo and balance are deterministic; times are one run of "
            "`partition` on a shared 2-core machine.", "", *rows, "",
            "Mean over P = 2, 4, 8, 16 of METIS's figure over the curve's (below 1: METIS "
            "is better):", "", *summary, "",
            *([f"Partition time at 10^6 columns (the grid built in {build:.0f} s):", "",
               *large, ""] if large else []),
            CONCLUSION])
        write_section(args.out, "bench-partition", text)
        print(f"wrote {args.out}")


CONCLUSION = """\
**Default: `method="sfc"`.** On every sheet whose wiring follows its positions (grid, torus,
stack, sphere and random sheets with k-NN + exponential long-range wiring) the Hilbert curve
sends about as few states per step as METIS, or fewer (METIS's halo is 0.95 - 1.39 times
the curve's at each P, 0.98 - 1.27 averaged over P), cutting at most 15% more edges than METIS
(random + EDR) and up to 12% fewer on grids, tori and stacks, with parts balanced exactly (METIS: within 1%), no dependency, less time
(1.2 - 1.8 s against 2.7 - 4.3 s at 10^6 columns), and an order that does not change with P
(a sheet stored in curve order is re-sliced for any P >= 2 without moving a column). METIS
wins where the positions are not the sheet's own coordinates: on fsaverage5's folded pial
surface the curve jumps across sulci and METIS halves the cut and the halo (17% less halo
once long-range wiring is added). For cortical meshes use `method="metis"`
(`pip install 'colgraph[metis]'`), or keep the curve and draw it through the spherical
surface of the same vertices (`partition(geo, P, pos=sphere_pos)`: 6 - 23% more cut than
METIS instead of 2x). Long-range (EDR) wiring dominates the halo whatever the partitioner: at
P = 16 a random sheet with 4 of its 12 inputs long-range sends 0.37 N states per step, a grid
with k-NN alone 0.04 N."""

if __name__ == "__main__":
    setup_process()  # threads' wait, tcmalloc where installed (re-executes once): first
    main()
