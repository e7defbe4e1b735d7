"""Columns that migrate on digits: does moving columns shorten the wiring of a scrambled sheet?

    python scripts/experiment_migration.py --seeds 0 1 2 --out BENCHMARKS.md \
        --figure docs/migration.png

Runs the main job (digits, 3-area stack, k = 16, wiring cost 0.1) on the sheet as built, on
a scrambled sheet (``geometry.scramble=0``: every column at a random site, its edges kept,
so its wiring ignores its layout) and on the scrambled sheet with migration
(``migrate.every=25 migrate.method=quadratic``: every 25 steps the columns move to shorten
their attention-weighted wire), one run after the other (never in parallel: 2 cores), for
each seed. Writes a table of test accuracy and attention-weighted length (medians over the
seeds, and each seed), the saving of migration over the scrambled static run and the share
of the scrambled excess it removes; ``--figure``: the columns at the scrambled start and at
the end of the first seed's migrating run, coloured by their place in the sheet as built
(does the original layout re-emerge?), and the length at each migration.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

from colgraph import setup_process

sys.path.insert(0, str(Path(__file__).parent))
from _report import compose, write_section  # noqa: E402

RUNS = {
    "as built, static": [],
    "scrambled, static": ["geometry.scramble=0"],
    "scrambled + migration": ["geometry.scramble=0", "migrate.method=quadratic"],
}
MIGRATING = "scrambled + migration"  # + migrate.every=<--every>


def figure(run_dir: Path, path: Path, every: int) -> None:
    """The columns at the scrambled start and at the end of a migrating run, coloured by
    their place in the sheet as built and drawn area by area (each column in the area of
    the site it sits on at the start), and the length at each migration."""
    import torch

    from colgraph.checkpoint import load_checkpoint
    from colgraph.connectome.placement import plot_placement
    from colgraph.geometry import build_geometry

    moves = list(csv.DictReader((run_dir / "migration.csv").open()))
    end = load_checkpoint(run_dir)["model"]["columnformer.edges.pos"]
    built = build_geometry(compose([]).geometry)
    start = build_geometry(compose(RUNS[MIGRATING]).geometry).pos
    site = {tuple(p): i for i, p in enumerate(built.pos.tolist())}
    at = torch.tensor([site[tuple(p)] for p in start.tolist()])  # each column's first site
    areas = {k: torch.isin(at, v).nonzero().flatten().numpy() for k, v in built.areas.items()}
    cost = [float(moves[0]["wire_before"])] + [float(r["wire_after"]) for r in moves]
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_placement(start, end, path, cost=cost, colour_by=built.pos, areas=areas,
                   cost_label=f"migration (every {every} steps)",
                   title="digits on a scrambled sheet: columns migrate (colour: place in the "
                         "sheet as built)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--runs", nargs="*", default=list(RUNS), help="names from RUNS")
    p.add_argument("--max-steps", type=int, default=None, help="a quick check")
    p.add_argument("--every", type=int, default=25, help="steps between migrations")
    p.add_argument("--out", type=Path, default=None, help="BENCHMARKS.md to update")
    p.add_argument("--figure", type=Path, default=None, help="migration PNG")
    args = p.parse_args()
    unknown = [r for r in args.runs if r not in RUNS]
    if unknown:
        raise SystemExit(f"Unknown run(s) {unknown}. Choices: {list(RUNS)}.")

    import torch

    from colgraph.training import train

    res: dict[str, list[tuple[float, float, float]]] = {name: [] for name in args.runs}
    for seed in args.seeds:
        for name in args.runs:
            overrides = RUNS[name] + [f"train.seed={seed}", "train.progress=false",
                                      "train.tensorboard=false"]
            if name == MIGRATING:
                overrides.append(f"migrate.every={args.every}")
            if args.max_steps is not None:
                overrides.append(f"train.max_steps={args.max_steps}")
            with tempfile.TemporaryDirectory() as run_dir:
                t0 = time.perf_counter()
                m = train(compose(overrides), run_dir)
                res[name].append((m["test_acc"], m["wiring_length"], time.perf_counter() - t0))
                print(f"seed {seed}, {name}: {res[name][-1]}", flush=True)
                if args.figure and seed == args.seeds[0] and name == MIGRATING:
                    figure(Path(run_dir), args.figure, args.every)

    def median(name: str, i: int) -> float:
        return statistics.median(r[i] for r in res[name])

    lines = ["| run | test acc (median) | attention-weighted length (median) | per seed "
             "(acc / length) | time per run |", "|---|---|---|---|---|"]
    for name, rows in res.items():
        each = ", ".join(f"{100 * a:.1f}% / {w:.3f}" for a, w, _ in rows)
        lines.append(f"| {name} | {100 * median(name, 0):.2f}% | {median(name, 1):.3f} | "
                     f"{each} | {median(name, 2):.0f} s |")
    text = ("## Columns that migrate on digits (`scripts/experiment_migration.py`)\n\n"
            f"Main job (digits, stack 8-6-4, 16 inputs per column, wiring cost 0.1, 14 epochs), "
            f"seeds {', '.join(map(str, args.seeds))}, {torch.get_num_threads()} threads; "
            f"`geometry.scramble=0` places every column at a random site of the sheet (its "
            f"edges kept); migration: `migrate.every={args.every} migrate.method=quadratic` "
            f"(stops at 3/4 of training); the attention-weighted length is measured on the final "
            f"positions.\n\n" + "\n".join(lines))
    names = ("as built, static", "scrambled, static", "scrambled + migration")
    if all(n in res for n in names):
        b, s, m = (median(n, 1) for n in names)
        acc = 100 * (median(names[2], 0) - median(names[1], 0))
        text += (f"\n\nMigration vs the scrambled static run: attention-weighted length "
                 f"{100 * (m / s - 1):+.0f}% ({s:.3f} -> {m:.3f}; the sheet as built: {b:.3f}, "
                 f"so {100 * (s - m) / (s - b):.0f}% of the scrambled excess is removed), "
                 f"accuracy {acc:+.2f} points.")
    print(text)
    if args.out:
        write_section(args.out, "migration-digits", text)


if __name__ == "__main__":
    setup_process()  # threads' wait, tcmalloc where installed (re-executes once): first
    main()
