"""Benchmark building geometries at scale: wiring 10^6 columns, meshes of 10^5 vertices.

    python scripts/bench_geometry.py --out BENCHMARKS.md
    python scripts/bench_geometry.py --columns 100000 --mesh 10000   # quicker

Each case runs in its own subprocess; time is wall-clock for the builder call (median of
``--repeats``), memory is the subprocess's peak RSS (including Python and torch, ~0.3 GB).
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from colgraph import setup_process

CASES = ("grid_knn16", "random_knn12_plus_edr4", "mesh_k1", "mesh_k2_geodesic")


def _mesh(n: int):
    """A wavy square surface triangulated from a sqrt(n) x sqrt(n) lattice."""
    import numpy as np

    side = math.isqrt(n)
    y, x = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    z = np.sin(x / 5.0) * np.cos(y / 7.0) * 2.0
    verts = np.stack([x.ravel(), y.ravel(), z.ravel()], 1).astype(np.float32)
    i = (y[:-1, :-1] * side + x[:-1, :-1]).ravel()
    faces = np.concatenate([np.stack([i, i + 1, i + side], 1),
                            np.stack([i + 1, i + side + 1, i + side], 1)])
    return verts, faces


def measure(case: str, columns: int, mesh: int, repeats: int) -> dict:
    from colgraph.geometry import exponential, from_mesh, grid, knn, random_sheet, union

    if case.startswith("mesh"):
        verts, faces = _mesh(mesh)
        k_ring, geodesic = (1, False) if case == "mesh_k1" else (2, True)
        build = lambda: from_mesh(verts, faces, k_ring=k_ring, geodesic=geodesic)  # noqa: E731
    elif case == "grid_knn16":
        side = math.isqrt(columns)
        build = lambda: grid(side, wiring=knn(16))  # noqa: E731
    else:
        build = lambda: random_sheet(columns, wiring=union(knn(12), exponential(m=4, lam=4.0)))  # noqa: E731
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        geo = build()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GB
    return {"case": case, "columns": geo.num_columns, "edges": geo.num_edges,
            "time_s": statistics.median(times), "peak_gb": peak}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--columns", type=int, default=1_000_000)
    p.add_argument("--mesh", type=int, default=100_000, help="mesh vertices")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.columns, args.mesh, args.repeats)))
        return
    header = "| case | columns | edges | time (s) | peak memory (GB) |"
    rows = [header, "|---|---|---|---|---|"]
    print(header)
    for case in CASES:
        proc = subprocess.run([sys.executable, __file__, "--child", case, "--columns",
                               str(args.columns), "--mesh", str(args.mesh), "--repeats",
                               str(args.repeats)], capture_output=True, text=True)
        if proc.returncode != 0:
            row = f"| {case} | - | - | failed: {proc.stderr.strip().splitlines()[-1]} | - |"
        else:
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            row = (f"| {case} | {r['columns']:,} | {r['edges']:,} | {r['time_s']:.1f} | "
                   f"{r['peak_gb']:.2f} |")
        rows.append(row)
        print(row, flush=True)
    if args.out:
        from _report import write_section

        text = "\n".join([
            "## Building geometries at scale", "",
            f"`python scripts/bench_geometry.py --columns {args.columns} --mesh {args.mesh}`. "
            "Targets: wiring 10^6 columns with k = 16 in under a minute and 4 GB; meshes of "
            "10^4 - 10^5 vertices in seconds. `grid_knn16`: a 1000 x 1000 grid, 16 nearest "
            "neighbours (cKDTree). `random_knn12_plus_edr4`: random points, 12 nearest + 4 "
            "exponential-distance-rule long-range inputs per column. `mesh_k1`: a triangulated "
            "wavy surface, mesh edges; `mesh_k2_geodesic`: its 2-ring with lengths along the "
            "surface. Time is the builder call (validation and canonical sort included); "
            "memory is the process's peak RSS (Python + torch ~0.3 GB of it).", "", *rows])
        write_section(args.out, "bench-geometry", text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    setup_process()  # threads' wait, tcmalloc where installed (re-executes once): first
    main()
