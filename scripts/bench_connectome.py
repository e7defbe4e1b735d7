"""Benchmark connectome export + analysis + figures on a large sheet.

    python scripts/bench_connectome.py --columns 10000 --out BENCHMARKS.md

A random sheet of ``--columns`` columns (12 nearest + 4 long-range inputs each), an untrained
Columnformer (attention measured on random tokens), then ``to_networkx`` -> ``analyze`` ->
``map_report`` -> ``mode_analysis`` -> ``plot_all``, each timed. Target: 10^4 columns
analysed, with the null tests of every scalar, in under two minutes.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from colgraph import setup_process


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--columns", type=int, default=10_000)
    p.add_argument("--null-models", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()

    import torch

    from colgraph import Columnformer
    from colgraph.connectome import analyze, map_report, mode_analysis, plot_all, to_networkx
    from colgraph.geometry import exponential, knn, random_sheet, union

    torch.manual_seed(0)
    times = {}
    t0 = time.perf_counter()
    geo = random_sheet(args.columns, wiring=union(knn(12), exponential(m=4, lam=4.0)),
                       input_size=args.columns // 4, output_size=args.columns // 10)
    model = Columnformer(geo, channels=16, steps=8)
    times["build sheet + model"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tokens = [torch.randn(8, geo.area("input").numel(), 16) for _ in range(2)]
    G = to_networkx(model, loader=tokens)
    times["export (attention on 16 samples)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = analyze(G, n_null=args.null_models, progress=True)
    families = ", ".join(metrics.get("significance", {}).get("families", ())) or "none"
    times[f"analyze, every scalar against {args.null_models} null models per family "
          f"({families})"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics["maps"] = map_report(G, n_perm=1000)
    times["maps: Moran's I of the node metrics, a map correlation against 1000 spatial nulls"] = \
        time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics["modes"] = mode_analysis(model, tokens, k=50, graph=G)
    times["eigenmodes: 50 geometric and 50 connectome modes, reconstruction of 16 activity "
          "maps"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        plot_all(G, metrics, tmp)
    times["figures"] = time.perf_counter() - t0
    analysis = sum(v for k, v in times.items() if not k.startswith("build"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    rows = ["| stage | seconds |", "|---|---|"]
    rows += [f"| {k} | {v:.1f} |" for k, v in times.items()]
    rows.append(f"| **export + analysis + figures** | **{analysis:.1f}** |")
    print("\n".join(rows))
    print(f"{G.number_of_nodes()} columns, {G.number_of_edges()} edges, peak {peak:.2f} GB")
    if args.out:
        from _report import write_section

        write_section(args.out, "bench-connectome", "\n".join([
            "## Connectome analysis at scale", "",
            f"`python scripts/bench_connectome.py --columns {args.columns}`: "
            f"{G.number_of_nodes():,} columns, {G.number_of_edges():,} edges (12 nearest + 4 "
            f"long-range inputs per column), every metric of `colgraph.connectome.analyze` "
            f"with each scalar tested against the null families (2 worker processes on this "
            f"2-core machine), the maps and eigenmode sections of the report and every "
            f"figure. Target: under two minutes. Peak memory {peak:.2f} GB.", "",
            *rows]))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    setup_process()  # threads' wait, tcmalloc where installed (re-executes once): first
    main()
