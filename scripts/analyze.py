"""Analyse the connectome a run learned: ``python scripts/analyze.py RUN_DIR_OR_CHECKPOINT``.

Writes ``connectome.graphml`` (Gephi / Cytoscape), ``metrics.json`` and the figures
(sheet, edge lengths with the exponential-distance-rule fit, area flow, degrees,
receptive fields; ``topography.png``, response correlation against distance on the sheet;
``input_map.png``, where the image's patches land, for image tasks; with ``--reference
FILE``, ``compare.json`` / ``compare.png``: the same metrics on a reference connectome;
``plasticity.png``, the wiring's history, when the run used plasticity; ``training.png``,
the training curves from ``metrics.csv``)
into ``RUN_DIR/analysis/`` (or ``--out``), and prints the headline numbers. Attention is measured on the run's own test set.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a run directory or checkpoint file")
    p.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/analysis")
    p.add_argument("--max-batches", type=int, default=None, help="limit the test batches")
    p.add_argument("--prior", action="store_true",
                   help="analyse the bias-only prior connectivity instead of attention")
    p.add_argument("--null-models", type=int, default=3)
    p.add_argument("--edge-fraction", type=float, default=0.5,
                   help="strongest fraction of edges kept for small-world / rich club")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference", type=Path, default=None,
                   help="a reference connectome (GraphML / GEXF / CSV) to compare with: "
                        "writes compare.json and compare.png")
    args = p.parse_args()
    if args.reference is not None and not args.reference.is_file():
        p.error(f"--reference {args.reference}: no such file (a GraphML, GEXF or edge CSV "
                f"connectome)")

    from colgraph.connectome import report

    run_dir = args.run if args.run.is_dir() else args.run.parent
    out = args.out or run_dir / "analysis"
    m = report(args.run, out, loader=None if args.prior else "test",
               max_batches=args.max_batches, n_null=args.null_models,
               edge_fraction=args.edge_fraction, seed=args.seed)
    flow, sw, mod = m["flow"], m["small_world"], m["modularity"]
    ff = f"{flow['ff_index']:+.3f}" if flow["ff_index"] is not None else ""
    ff += f" ({flow['note']})" if flow.get("note") else ""
    print(f"{m['columns']} columns, {m['edges']} edges, weight = {m['weight']}")
    print(f"feedforward index {ff} over areas {flow['areas']}")
    print(f"EDR lambda {m['edr']['lambda']:.3f} (KS {m['edr']['ks']:.3f}), wiring per column "
          f"{m['wiring_per_column']:.3f}, weight-distance rho {m['weight_distance_rho']:.3f}")
    print(f"modularity Q {mod['Q']:.3f} (null {mod['Q_null_mean']:.3f}, z {mod['Q_z']:.1f}), "
          f"small-world sigma {sw['sigma']:.2f}, omega {sw['omega']:.2f}, rich club max "
          f"{m['rich_club']['max_normalized']:.2f}")
    import json

    from colgraph.training import load_model

    model, _, _, data = load_model(args.run)
    if hasattr(model.encoder, "input_map"):  # where the image's patches land on the sheet
        imap = model.encoder.input_map()
        imap.plot(path=out / "input_map.png")
        s = imap.stretch()
        m["input_map"] = {"method": imap.method, "grid": list(imap.grid),
                          "stretch_median": float(s.median()), "stretch_max": float(s.max())}
        print(imap.summary())
    if not args.prior:  # how topographic are the responses? (on the run's test set)
        from colgraph.connectome.figures import plot_topography
        from colgraph.objectives import measure_topography

        x = data.x_test if args.max_batches is None else data.x_test[:256 * args.max_batches]
        topo = measure_topography(model, x, seed=args.seed)
        plot_topography(topo["distance"], topo["correlation"], out / "topography.png",
                        topo["smoothness"])
        m["topographic_smoothness"] = topo["smoothness"]
        print(f"topographic smoothness {topo['smoothness']:.3f} (response correlation of wired "
              f"neighbours minus random pairs)")
    (out / "metrics.json").write_text(json.dumps(m, indent=1, default=float))
    if args.reference is not None:  # the same metrics on a reference connectome
        from colgraph.connectome import read_connectome, write_comparison

        learned = read_connectome(out / "connectome.graphml")
        result = write_comparison(learned, read_connectome(args.reference), out,
                                  names=("learned", args.reference.stem),
                                  n_null=args.null_models, edge_fraction=args.edge_fraction,
                                  seed=args.seed)
        print("KS D vs reference: " + ", ".join(f"{k} {v['D']:.2f}"
                                                for k, v in result["ks"].items()))
    if (run_dir / "plasticity.csv").is_file():  # the run learned its wiring: its history
        from colgraph.plasticity import plot_history

        plot_history(run_dir, out / "plasticity.png")
    if (run_dir / "metrics.csv").is_file():  # how the run got there
        from colgraph.curves import plot_training

        plot_training(run_dir, out / "training.png")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
