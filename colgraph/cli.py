"""Command lines: ``colgraph-train`` / ``colgraph-analyze`` (and ``python -m colgraph train |
analyze``); ``scripts/train.py`` and ``scripts/analyze.py`` call the same functions.

The hydra configs live in the repository's ``configs/``; a wheel carries them inside the
package (``colgraph/configs``, see ``pyproject.toml``), so the commands work from any
directory. The commands first set up their process (:func:`colgraph.setup_process`: idle
OpenMP threads that sleep soon, and tcmalloc where installed, which re-executes the command
once); :func:`train` and
:func:`analyze`, callable from Python, apply :func:`colgraph.tune_allocator` before anything
imports torch's users (PyG makes a tensor at import), so its huge-page setting takes effect.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .allocator import find_allocator, tune_allocator
from .process import setup_process

__all__ = ["config_dir", "train", "analyze", "main", "train_command", "analyze_command"]


def config_dir() -> Path:
    """The hydra config directory: the source tree's ``configs/`` (a checkout or an editable
    install), else the copy packaged with colgraph."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "configs", here / "configs"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"colgraph's configs are missing (looked in {here.parent / 'configs'} "
                            f"and {here / 'configs'}): reinstall colgraph.")


def train(argv: list[str] | None = None) -> None:
    """``colgraph-train [group=option] [key=value ...]``: hydra over
    :func:`colgraph.training.train`; the run directory is hydra's output directory."""
    tune_allocator()  # before the first tensor: the imports below make some
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import DictConfig

    from .config import register_configs
    from .tasks import task_class
    from .training import train as run
    from .training.logs import log

    register_configs()

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
    def _main(cfg: DictConfig) -> float:
        try:
            metrics = run(cfg, HydraConfig.get().runtime.output_dir)
        except EXPECTED as e:
            if HydraConfig.get().mode != RunMode.RUN:
                raise  # a multirun job: hydra records the failure and goes on
            _report(log, str(e))  # stderr and train.log, without a traceback
            raise SystemExit(1) from None
        return metrics["test_" + task_class(cfg.task.name).metric]  # for sweepers

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    try:
        _check_output_dir(sys.argv[1:])
    except OSError as e:  # CheckpointWriteError: what, why and the fix
        print(e, file=sys.stderr)
        raise SystemExit(1) from None
    try:
        _main()
    except KeyboardInterrupt as e:  # Interrupted: saved, with the command to resume
        import os

        # several processes: rank 0 alone speaks (it printed an Interrupted message already)
        if not getattr(e, "reported", False) and os.environ.get("RANK", "0") == "0":
            print(str(e) or "Interrupted (Ctrl-C) outside the training batches: nothing was "
                  "saved at this point (the run directory keeps its last checkpoint, if "
                  "any).", file=sys.stderr)
        raise SystemExit(130) from None


#: hydra's command-line flags that print and exit without a run directory
PRINT_ONLY = {"-h", "--help", "--hydra-help", "--version", "-i", "--info", "-c", "--cfg",
              "-p", "--package", "-sc", "--shell-completion"}


def _check_output_dir(args: list[str]) -> None:
    """Refuse an output directory that cannot be written (``hydra.run.dir``, or
    ``hydra.sweep.dir`` with ``-m``) before hydra makes it, which would fail with hydra's own
    traceback: the override's value, else the config's; the part before an interpolation
    (``${now:...}``, resolved later by hydra). Nothing is created; hydra's flags that only
    print (``--help``, ``--cfg``, ``--info``, ...) make no directory and are not checked."""
    import os

    from omegaconf import OmegaConf

    from .checkpoint import ensure_writable

    if {a.split("=")[0] for a in args} & PRINT_ONLY:
        return
    group = "sweep" if {"-m", "--multirun"} & set(args) else "run"
    key = f"hydra.{group}.dir"
    values = [a.partition("=")[2] for a in args if a.partition("=")[0].lstrip("+") == key]
    value = values[-1] if values else OmegaConf.to_container(
        OmegaConf.load(config_dir() / "config.yaml"), resolve=False)["hydra"][group]["dir"]
    if not isinstance(value, str) or not value:
        return
    literal = value.split("${")[0]
    directory = literal if literal == value else os.path.dirname(literal)
    ensure_writable(Path(directory or ".").expanduser().absolute(), create=False, setting=key)


def _report(log: logging.Logger, message: str) -> None:
    """An error on stderr (hydra's console handler writes to stdout) and in the run's
    ``train.log`` (hydra's file handler), once each."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    print(message, file=sys.stderr)


#: errors that explain themselves (a refused setting, a missing file, a diverged run): a
#: failed ``colgraph-train`` prints the message, no traceback, and exits with status 1
EXPECTED = (ValueError, FloatingPointError, OSError)


ANALYZE_DOC = """Analyse the connectome a run learned.

Writes connectome.graphml (Gephi / Cytoscape; node metrics attached), metrics.json (its
"maps" section: Moran's I of the per-column maps, a map correlation against spatial nulls)
and the figures (sheet, edge lengths with the exponential-distance-rule fit, area flow,
degrees, receptive fields; selectivity.png, each column's preferred class, for labelled
data; topography.png, response correlation against distance on the sheet;
input_map.png, where the image's patches land, for image tasks; with --reference FILE,
compare.json / compare.png: the same metrics on a reference connectome; plasticity.png, the
wiring's history, when the run used plasticity; training.png, the training curves;
connectome.html, the interactive explorer with a slider over the run's connectome
snapshots, when plotly is installed: pip install 'colgraph[view]') into
RUN_DIR/analysis/ (or --out), and prints the headline numbers. Attention is measured on the
run's own test set (--data for a data file that moved).
"""


def _num(value, spec: str) -> str:
    """``value`` formatted with ``spec``, or ``n/a`` for a metric the graph leaves undefined
    (None / NaN: ``notes`` in metrics.json says why)."""
    import math

    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def _check_analyze_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """Refuse bad options before anything is loaded; returns the output directory."""
    import os

    from .connectome.arrays import check_settings
    from .connectome.export import WRITERS

    for flag, path in (("--reference", args.reference), ("--data", args.data)):
        if path is not None and not path.is_file():
            p.error(f"{flag} {path}: no such file")
    if args.reference is not None and args.reference.suffix.lower() not in WRITERS:
        p.error(f"--reference {args.reference}: unsupported connectome format "
                f"'{args.reference.suffix}'. Choices: {', '.join(WRITERS)}")
    if args.max_batches is not None and args.max_batches < 1:
        p.error(f"--max-batches must be >= 1 (got {args.max_batches})")
    from .connectome.nulls import check_families

    if args.nulls not in ("auto", "none"):
        args.nulls = tuple(f.strip() for f in args.nulls.split(",") if f.strip())
    try:
        check_families(args.nulls)
    except ValueError as e:
        p.error(f"--nulls: {e}")
    if args.generative is not None:
        from .connectome.generative import DEFAULT_MODELS, MODELS

        args.generative = (DEFAULT_MODELS if args.generative == "default" else
                           tuple(m.strip() for m in args.generative.split(",") if m.strip()))
        unknown = [m for m in args.generative if m not in MODELS] or (
            [] if args.generative else ["(none)"])
        if unknown:
            p.error(f"--generative: unknown model(s) {', '.join(unknown)}. Choices: "
                    f"{', '.join(MODELS)}, or 'default'")
    for flag, key, value in (("--null-models", "n_null", args.null_models),
                             ("--edge-fraction", "edge_fraction", args.edge_fraction),
                             ("--seed", "seed", args.seed)):
        try:
            check_settings(**{key: value})
        except ValueError as e:
            p.error(str(e).replace(key, flag, 1))
    run_dir = args.run if args.run.is_dir() else args.run.parent
    out = args.out or run_dir / "analysis"
    if out.exists() and not out.is_dir():
        p.error(f"--out {out}: a file is in the way (the analysis is a directory); choose "
                f"another --out or move the file")
    existing = next(a for a in (out, *out.parents) if a.exists())
    if not existing.is_dir():
        p.error(f"--out {out}: {existing} is a file, so no directory can be made there")
    if not os.access(existing, os.W_OK):
        p.error(f"--out {out}: {existing} is not writable; choose another --out")
    return out


def analyze(argv: list[str] | None = None) -> None:
    """``colgraph-analyze RUN_DIR_OR_CHECKPOINT [options]`` (see ``--help``)."""
    tune_allocator()  # before the first tensor
    p = argparse.ArgumentParser(prog="colgraph-analyze", description=ANALYZE_DOC,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a run directory or checkpoint file")
    p.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/analysis")
    p.add_argument("--max-batches", type=int, default=None, help="limit the test batches")
    p.add_argument("--prior", action="store_true",
                   help="analyse the bias-only prior connectivity instead of attention")
    p.add_argument("--null-models", type=int, default=3,
                   help="null models per family (>= 0; 0: no significance tests; the rich "
                        "club draws at least 1)")
    p.add_argument("--nulls", default="auto",
                   help="null families, comma-separated: degree, spatial, prior, "
                        "prior_length, prior_global; 'auto' (degree, spatial where the sheet "
                        "has positions, prior) or 'none'")
    p.add_argument("--generative", default=None, metavar="MODELS",
                   help="fit generative wiring models to the connectome, comma-separated "
                        "(spatial, matching, neighbors, clu-avg, deg-avg, ...; 'default': "
                        "spatial, neighbors, matching, clu-avg, deg-avg): energy.png and a "
                        "'generative' section; minutes on 10^3 columns")
    p.add_argument("--placement", action="store_true",
                   help="how close to optimally placed is the sheet? its wire against the "
                        "best placement found (quadratic + swaps) and random placements: "
                        "placement.png and a 'placement' section")
    p.add_argument("--edge-fraction", type=float, default=0.5,
                   help="strongest fraction of edges kept for small-world / rich club, in "
                        "(0, 1]")
    p.add_argument("--seed", type=int, default=0, help=">= 0")
    p.add_argument("--data", type=Path, default=None,
                   help="the run's data file (data=file) if it moved since training")
    p.add_argument("--reference", type=Path, default=None,
                   help="a reference connectome (GraphML / GEXF / CSV) to compare with: "
                        "writes compare.json and compare.png")
    args = p.parse_args(argv)
    out = _check_analyze_args(p, args)
    try:
        _analyze(args, out)
    except EXPECTED as e:  # a refusal that explains itself: the message, no traceback
        print(f"colgraph-analyze: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None


def _analyze(args: argparse.Namespace, out: Path) -> None:
    """Read the reference and the run, then analyse into a staging directory that becomes
    ``out`` only once everything in it is written."""
    import os
    import shutil
    import tempfile

    from .connectome import read_connectome
    from .restore import load_model

    reference = None
    if args.reference is not None:  # read and check it before the expensive export
        import warnings

        from .connectome.compare import _arrays

        reference = read_connectome(args.reference)
        with warnings.catch_warnings():  # an undirected graph: compare says so once, below
            warnings.simplefilter("ignore", UserWarning)
            _arrays(reference)
    run_dir = args.run if args.run.is_dir() else args.run.parent
    model, _, _, data = load_model(args.run, with_data=not args.prior, data_path=args.data)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:  # everything goes into ``stage``, moved to ``out`` only when all of it is written
        _analyze_into(stage, args, model, data, reference, run_dir)
        out.mkdir(exist_ok=True)
        for f in sorted(stage.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    print(f"wrote {out}")


def _print_summary(m: dict) -> None:
    """The console summary of ``colgraph-analyze``'s metrics."""
    from .connectome.nulls import significance_table

    flow, sw, mod = m["flow"], m["small_world"], m["modularity"]
    ff = f"{flow['ff_index']:+.3f}" if flow["ff_index"] is not None else ""
    ff += f" ({flow['note']})" if flow.get("note") else ""
    print(f"{m['columns']} columns, {m['edges']} edges, weight = {m['weight']}")
    print(f"feedforward index {ff} over areas {flow['areas']}")
    print(f"EDR lambda {_num(m['edr']['lambda'], '.3f')} (KS {_num(m['edr']['ks'], '.3f')}), "
          f"wiring per column {m['wiring_per_column']:.3f}, weight-distance rho "
          f"{_num(m['weight_distance_rho'], '.3f')}")
    print(f"modularity Q {mod['Q']:.3f} (null {_num(mod['Q_null_mean'], '.3f')}, z "
          f"{_num(mod['Q_z'], '.1f')}), small-world sigma {_num(sw['sigma'], '.2f')}, omega "
          f"{_num(sw['omega'], '.2f')}, rich club max "
          f"{_num(m['rich_club']['max_normalized'], '.2f')}")
    if m.get("significance"):
        print(significance_table(m["significance"]))
    maps = m["maps"]
    print("Moran's I: " + ", ".join(
        f"{k} {_num(v['I'], '.2f')} (z {_num(v['z'], '.1f')}, p {_num(v['p'], '.3f')})"
        for k, v in maps["morans_i"].items()))
    c = maps["correlation"]
    print(f"{c['a']} vs {c['b']}: {c['method']} r {_num(c['r'], '.3f')}, naive p "
          f"{_num(c['p_naive'], '.2g')}, spatial p {_num(c['p_spatial'], '.3f')} ({c['null']} "
          f"null, {c['n_perm']} maps)")
    if m.get("modes"):  # Pang et al.'s comparison: which modes reconstruct the activity
        md = m["modes"]
        print(f"eigenmodes (k = {md['k']}): activity maps reconstructed with r = "
              f"{_num(md['geometric']['accuracy_at_k'], '.3f')} by geometric modes, "
              f"{_num(md['connectome']['accuracy_at_k'], '.3f')} by connectome modes")
    for note in m.get("notes", []):
        print(f"note: {note}")


def _opt_in_analyses(out: Path, args: argparse.Namespace, m: dict) -> None:
    """What training changed, and the generative fit / placement when asked for, on the
    connectome already written to ``out`` (their sections added to ``m``)."""
    from .connectome import read_connectome

    if args.prior and not args.generative and not args.placement:
        return
    learned = read_connectome(out / "connectome.graphml")  # read once for all three
    if not args.prior:  # what training changed: against the sheet as built, over snapshots
        from .connectome.changes import changes_summary, plot_changes, run_changes

        m["changes"] = run_changes(args.run, n_null=args.null_models,
                                   edge_fraction=args.edge_fraction, seed=args.seed,
                                   learned=learned)
        plot_changes(m["changes"], out / "changes.png")
        print(changes_summary(m["changes"]))
    if args.generative:  # which developmental wiring rule grows a graph like this one
        from .connectome.generative import fit_generative, plot_energy_landscape

        fit = m["generative"] = fit_generative(learned, models=args.generative, seed=args.seed,
                                               edge_fraction=args.edge_fraction, progress=True)
        plot_energy_landscape(fit, out / "energy.png")
        best = fit["best"]
        gamma = "" if best["gamma"] is None else f", gamma {best['gamma']:+.2f}"
        print(f"generative models: best {best['model']} (eta {best['eta']:+.2f}{gamma}), "
              f"energy {best['energy']:.3f} (0: degree, clustering, betweenness and length "
              f"distributions all match)")
    if args.placement:  # Cherniak's "save wire": the columns' layout against the best found
        from .connectome.arrays import arrays
        from .connectome.placement import placement_report, plot_placement

        # analyze(placement=True)'s section, plus the best placement for the figure
        m["placement"], best = placement_report(learned, seed=args.seed, return_placement=True)
        a = arrays(learned)
        plot_placement(a.pos, best.pos, out / "placement.png", cost=best.cost, areas=a.areas)
        w = m["placement"]["wire"]
        print(f"placement: wire {w['actual']:.4g}, best found {_num(w['optimal'], '.4g')}, "
              f"random placements {_num(w['random_mean'], '.4g')} (z {_num(w['z'], '.1f')}, "
              f"excess {_num(w['excess'], '.2f')}: 0 = as good as the best found, 1 = random)")


def _write_view(out: Path, run_dir: Path) -> None:
    """``connectome.html``: the explorer (:func:`colgraph.connectome.view`) of the connectome
    in ``out`` after the run's snapshots (without them when they are not of this sheet)."""
    from importlib.util import find_spec

    if find_spec("plotly") is None:
        print("connectome.html: not written (the explorer draws with plotly: pip install "
              "'colgraph[view]')")
        return
    from .connectome import read_connectome, view

    learned = read_connectome(out / "connectome.graphml")
    folder = run_dir / "connectome"
    snaps = folder if any(folder.glob("epoch*.graphml")) else None
    try:
        page = view(learned, snapshots=snaps)
    except ValueError as e:  # snapshots of another sheet: the learned connectome alone
        print(f"connectome.html: without the snapshots of {folder}: {e}")
        page = view(learned)
    page.save(out / "connectome.html")


def _analyze_into(out: Path, args: argparse.Namespace, model, data, reference,
                  run_dir: Path) -> None:
    """The analysis of ``colgraph-analyze`` written into ``out``."""
    from .connectome import read_connectome, report, write_json
    from .data import iterate_batches

    x_test = y_test = None
    if data is not None:
        x_test, y_test = data.x_test, data.y_test
        if args.max_batches is not None:
            x_test, y_test = x_test[:256 * args.max_batches], y_test[:256 * args.max_batches]
    loader = None if args.prior else iterate_batches(x_test, y_test, 256)
    m = report(model, out, loader=loader, n_null=args.null_models,
               edge_fraction=args.edge_fraction, seed=args.seed, nulls=args.nulls,
               progress=True)
    _print_summary(m)
    if hasattr(model.encoder, "input_map"):  # where the image's patches land on the sheet
        imap = model.encoder.input_map()
        imap.plot(path=out / "input_map.png")
        s = imap.stretch()
        m["input_map"] = {"method": imap.method, "grid": list(imap.grid),
                          "stretch_median": float(s.median()), "stretch_max": float(s.max())}
        print(imap.summary())
    if not args.prior:  # how topographic are the responses? (on the run's test set)
        from .connectome.figures import plot_topography
        from .objectives import measure_topography

        topo = measure_topography(model, x_test, seed=args.seed)
        plot_topography(topo["distance"], topo["correlation"], out / "topography.png",
                        topo["smoothness"])
        m["topographic_smoothness"] = topo["smoothness"]
        print(f"topographic smoothness {topo['smoothness']:.3f} (response correlation of wired "
              f"neighbours minus random pairs)")
    _opt_in_analyses(out, args, m)
    _write_view(out, run_dir)
    write_json(out / "metrics.json", m)  # strict JSON: an undefined metric is null
    if reference is not None:  # the same metrics on a reference connectome
        from .connectome import write_comparison

        learned = read_connectome(out / "connectome.graphml")
        result = write_comparison(learned, reference, out,
                                  names=("learned", args.reference.stem),
                                  n_null=args.null_models, edge_fraction=args.edge_fraction,
                                  seed=args.seed)
        print("KS D vs reference: " + ", ".join(f"{k} {v['D']:.2f}"
                                                for k, v in result["ks"].items()))
    if (run_dir / "plasticity.csv").is_file():  # the run learned its wiring: its history
        from .plasticity import plot_history

        plot_history(run_dir, out / "plasticity.png")
    if (run_dir / "metrics.csv").is_file():  # how the run got there
        from .curves import plot_training

        plot_training(run_dir, out / "training.png")


def allocator(argv: list[str] | None = None) -> None:
    """``python -m colgraph allocator``: print the allocator library colgraph's commands
    preload (for ``LD_PRELOAD=$(python -m colgraph allocator) python my_script.py``); exit
    status 1, with how to install one, if there is none."""
    from .allocator import INSTALL

    if argv:
        raise SystemExit(f"python -m colgraph allocator takes no arguments (got {argv}).")
    choice = os.environ.get("COLGRAPH_ALLOCATOR", "auto")
    if choice == "system":
        raise SystemExit("COLGRAPH_ALLOCATOR=system: colgraph preloads no allocator.")
    library = find_allocator(choice)
    if library is None:
        raise SystemExit(f"no tcmalloc or jemalloc found: install one with {INSTALL}.")
    print(library)


COMMANDS = {"train": train, "analyze": analyze, "allocator": allocator}


def main(argv: list[str] | None = None) -> None:
    """``python -m colgraph {train,analyze,allocator} ...``."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m colgraph {train,analyze,allocator} [arguments]\n"
              "  train    [group=option] [key=value ...]   (hydra overrides, as colgraph-train)\n"
              "  analyze  RUN_DIR_OR_CHECKPOINT [options]  (as colgraph-analyze; --help)\n"
              "  allocator                                 (the allocator library to "
              "LD_PRELOAD)",
              file=sys.stderr)
        raise SystemExit(2)
    COMMANDS[argv[0]](argv[1:])


def train_command() -> None:
    """The ``colgraph-train`` command: :func:`train` in a process set up for training
    (:func:`colgraph.setup_process`)."""
    setup_process()
    train()


def analyze_command() -> None:
    """The ``colgraph-analyze`` command: :func:`analyze` in a process set up for training
    (:func:`colgraph.setup_process`)."""
    setup_process()
    analyze()
