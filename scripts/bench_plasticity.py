"""Benchmark one prune + grow update on a large sheet.

    python scripts/bench_plasticity.py --columns 100000 --k 16 --out BENCHMARKS.md

A random sheet of ``--columns`` columns with ``--k`` inputs each (``k - 4`` nearest, 4
long-range), a Columnformer on it (as many steps as the output area is hops from the input
area) with AdamW state, and one plasticity update (30% of the edges dropped and
regrown) per grow rule, timed (median of ``--repeats``). The update edits the edge index,
every per-edge parameter, the Adam moments and the attention EMA. The gradient rules are
timed with recorded attention from one real forward + backward pass (its cost reported
separately: it is part of a training step anyway). Target: under 2 s at 10^5 x 16 edges.
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
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()

    import torch

    from colgraph import Columnformer
    from colgraph.geometry import exponential, knn, random_sheet, union
    from colgraph.plasticity import Plasticity, PlasticityConfig

    torch.manual_seed(0)
    t0 = time.perf_counter()
    # k - 4 nearest + 4 long-range (exponential distance rule) inputs per column, so the
    # output area is a few hops from the input area and keep_reachable has real work
    geo = random_sheet(args.columns, wiring=union(knn(args.k - 4), exponential(m=4, lam=30.0)),
                       input_size=args.columns // 4, output_size=args.columns // 10)
    steps = int(geo.hops_from(geo.area("input"))[geo.area("output")].max())
    model = Columnformer(geo, channels=args.channels, steps=steps, mlp_ratio=1.0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    build = time.perf_counter() - t0
    n_in = geo.area("input").numel()

    def step(record: bool, plasticity):
        if record:
            plasticity.start_recording()
        out = model(torch.randn(args.batch, n_in, args.channels))
        loss = out.output.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return plasticity.stop_recording() if record else None

    rows = []
    for grow in ("random", "geometric", "gradient", "gradient_distance"):
        for prune in (("attention", "wiring") if grow == "gradient" else ("attention",)):
            cfg = PlasticityConfig(name="custom", prune=prune, grow=grow, every=1,
                                   drop_fraction=0.3, anneal="constant")
            plasticity = Plasticity(model, cfg, total_steps=10**6, optimizer=opt)
            times, record_times = [], []
            for r in range(args.repeats):
                t0 = time.perf_counter()
                records = step(grow.startswith("gradient"), plasticity)
                record_times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                stats = plasticity.update(step=r + 1, records=records)
                times.append(time.perf_counter() - t0)
                del records
            rows.append((prune, grow, statistics.median(times), stats["removed"],
                         stats["added"], statistics.median(record_times)))
            print(rows[-1], flush=True)
            model.edges.unregister(plasticity)

    E = model.edges.num_edges
    lines = ["## Plasticity update (`scripts/bench_plasticity.py`)\n",
             f"{args.columns:,} columns x {args.k} inputs = {E:,} edges, C = {args.channels}, "
             f"B = {args.batch}, T = {steps}, {torch.get_num_threads()} threads; sheet + model built "
             f"in {build:.1f} s. One update = score, prune 30%, grow as many, ONE edit of "
             f"edges + biases + Adam moments + attention EMA. Median of {args.repeats}.\n",
             "| prune | grow | update | removed | added | training step (for scale) |",
             "|---|---|---|---|---|---|"]
    for prune, grow, t, rem, add, rt in rows:
        lines.append(f"| {prune} | {grow} | {t:.2f} s | {rem:,} | {add:,} | {rt:.2f} s |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        sys.path.insert(0, str(Path(__file__).parent))
        from _report import write_section

        write_section(args.out, "plasticity-update", text)


if __name__ == "__main__":
    setup_process()  # threads' wait, tcmalloc where installed (re-executes once): first
    main()
