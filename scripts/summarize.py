"""Summarise runs: a table of what each run changed and reached, and a figure.

    python scripts/summarize.py runs/multirun/2026-12-01/10-00-00 [more runs ...]
        [--out summary.csv] [--plot summary.png] [--metric test_acc]

Each argument is a run directory, a hydra multirun directory or any folder holding runs
(directories with a ``metrics.csv``). The table (printed and written as CSV) has one row
per run: its hydra overrides (the swept settings) and final metrics; the figure shows each
run's final metric and its test curve over epochs.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run / multirun directories")
    p.add_argument("--out", type=Path, default=None,
                   help="CSV to write (default: summary.csv in the first directory)")
    p.add_argument("--plot", type=Path, default=None,
                   help="figure to write (default: summary.png next to the CSV)")
    p.add_argument("--metric", default=None, help="metric to plot (default: the first test_*)")
    args = p.parse_args()

    from colgraph.sweep import collect_runs, format_table, plot_summary, write_summary

    runs = collect_runs(args.runs)
    out = args.out or args.runs[0] / "summary.csv"
    write_summary(runs, out)
    plot = args.plot or out.with_suffix(".png")
    plot_summary(runs, plot, args.metric)
    print(format_table(runs, args.runs[0] if len(args.runs) == 1 else None))
    print(f"wrote {out} and {plot}")


if __name__ == "__main__":
    main()
