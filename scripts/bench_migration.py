"""Benchmark migration on a large sheet: one move, one swap sweep, one quadratic placement.

    python scripts/bench_migration.py --columns 100000 --k 16 --out BENCHMARKS.md

A random sheet of ``--columns`` columns with ``--k`` nearest inputs each, scrambled
(``geometry.scramble``: columns at random sites), a Columnformer on it, and, timed (median
of ``--repeats``, on the whole sheet, one process):

* ``SheetEdges.move`` of a random permutation, with the lengths derived again;
* one migration with ``method=greedy, sweeps=1`` (the running attention gathered, one swap
  sweep over every column, the move), the same with ``sweeps=3``, and one with
  ``method=quadratic, sweeps=1`` (a sparse LU solve of the Laplacian, the snap to the
  sites, a sweep from there and one from the current placement, the move).

Target: one sweep and one quadratic placement at 10^5 columns x 16 edges in seconds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from colgraph import setup_process


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--columns", type=int, default=100_000)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()

    import torch

    from colgraph import Columnformer
    from colgraph.geometry import knn, random_sheet, scramble
    from colgraph.plasticity import MigrateConfig, Migration

    torch.manual_seed(0)
    t0 = time.perf_counter()
    geo = scramble(random_sheet(args.columns, wiring=knn(args.k)), seed=0)
    steps = int(geo.hops_from(geo.area("input"))[geo.area("output")].max())
    model = Columnformer(geo, channels=4, steps=steps, mlp_ratio=1.0)
    build = time.perf_counter() - t0
    edges = model.edges
    rows = []

    def timed(name, fn):
        times = []
        for r in range(args.repeats):
            t = time.perf_counter()
            out = fn(r)
            times.append(time.perf_counter() - t)
        rows.append((name, statistics.median(times), out))
        print(f"{name}: {statistics.median(times):.2f} s ({out})", flush=True)

    def move(r):
        to = torch.randperm(args.columns, generator=torch.Generator().manual_seed(r))
        m = edges.move(to)
        _ = edges.length
        return f"{m.num_moved} columns moved"

    timed("SheetEdges.move (random permutation) + lengths", move)
    step = iter(range(1, 10**6))
    for label, cfg in (("greedy, 1 sweep", MigrateConfig(every=1, sweeps=1)),
                       ("greedy, 3 sweeps", MigrateConfig(every=1, sweeps=3)),
                       ("quadratic, 1 sweep", MigrateConfig(every=1, sweeps=1,
                                                            method="quadratic"))):
        migration = Migration(model, cfg, total_steps=10**6)

        def once(r, migration=migration):
            s = migration.update(next(step))
            return (f"length {s['wire_before']:.3f} -> {s['wire_after']:.3f}, "
                    f"{100 * s['moved_fraction']:.0f}% moved")

        timed(f"one migration: {label}", once)
        migration.close()
    text = (f"## Migration at scale (`scripts/bench_migration.py`)\n\n"
            f"A scrambled random sheet of {args.columns} columns x {args.k} nearest inputs "
            f"({edges.num_edges} edges), one process, {torch.get_num_threads()} threads, "
            f"median of {args.repeats} (sheet and model built in {build:.1f} s). Each "
            f"migration includes gathering the running attention, the placement and the "
            f"move; successive repeats continue from the previous placement.\n\n"
            "| operation | time | result (last repeat) |\n|---|---|---|\n"
            + "\n".join(f"| {n} | {t:.2f} s | {o} |" for n, t, o in rows))
    print(text)
    if args.out:
        sys.path.insert(0, str(Path(__file__).parent))
        from _report import write_section

        write_section(args.out, "migration-scale", text)


if __name__ == "__main__":
    setup_process()  # threads' wait, tcmalloc where installed (re-executes once): first
    main()
