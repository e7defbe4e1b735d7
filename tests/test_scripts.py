"""The shipped entry points run as a user would run them."""
import re

import pytest
import subprocess
import sys
from pathlib import Path

from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


def run(args, cwd):
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_train_script_with_overrides(tmp_path):
    out = run([str(ROOT / "scripts" / "train.py"), *TINY, "train.max_steps=2",
               f"hydra.run.dir={tmp_path}"], tmp_path)
    assert out.count("test accuracy") == 1, out  # once: not by hydra's handler and ours
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "metrics.csv").is_file()
    assert (tmp_path / ".hydra" / "config.yaml").is_file()
    assert (tmp_path / "training.png").stat().st_size > 10_000  # curves at the end of training
    # messages go through logging: hydra's train.log holds them too, and the per-epoch
    # line is there with the progress bar off (TINY sets train.progress=false)
    log = (tmp_path / "train.log").read_text()
    assert "[colgraph][INFO]" in log and "test accuracy" in log and "epoch 0.17 | loss" in log


def test_train_script_runs_sequence_and_masked_tasks(tmp_path):
    out = run([str(ROOT / "scripts" / "train.py"), "+experiment=waves", "data.samples=100",
               "model.channels=8", "train.max_steps=2", "train.progress=false",
               "train.tensorboard=false", f"hydra.run.dir={tmp_path / 'seq'}"], tmp_path)
    assert "test accuracy" in out and "line(16)" in out
    out = run([str(ROOT / "scripts" / "train.py"), "+experiment=mim", "model.channels=8",
               "train.max_steps=2", "train.progress=false", "train.tensorboard=false",
               f"hydra.run.dir={tmp_path / 'mim'}"], tmp_path)
    assert "test masked-patch MSE" in out


def test_train_script_reports_bad_geometry(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "geometry.name=grd",
                           f"hydra.run.dir={tmp_path}"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "geometry must be one of grid, torus, stack" in proc.stderr and "(got 'grd')" in proc.stderr


def test_quickstart_example(tmp_path):
    out = run([str(ROOT / "examples" / "quickstart.py"), "--epochs", "1", "--out",
               str(tmp_path / "q.png")], tmp_path)
    assert "test acc" in out and (tmp_path / "q.png").stat().st_size > 10_000


def test_bench_script_small(tmp_path):
    out = run([str(ROOT / "scripts" / "bench.py"), "--quick", "--inline", "--repeats", "1",
               "--memory-gb", "0.02", "--out", str(tmp_path / "b.md")], tmp_path)
    text = (tmp_path / "b.md").read_text()
    for table in ("GFLOP/s fp32 matmul", "dense / sparse", "ns per edge", "AdamW state",
                  "GATConv", "/ glibc", "two at once", "per-column matmuls"):
        assert table in text, table
    assert "| 64 | 2048 |" in text  # a measured row
    assert "estimated from N = 64" in text  # N = 144 does not fit: scaled from N = 64
    assert "error" not in text and "failed" not in text, out
    # one part re-measured alone replaces only its own block
    run([str(ROOT / "scripts" / "bench.py"), "gat", "--quick", "--inline", "--repeats", "1",
         "--out", str(tmp_path / "b.md")], tmp_path)
    again = (tmp_path / "b.md").read_text()
    assert again.count("<!-- part ") == 8 and again.count("<!-- part gat -->") == 1
    assert "estimated from N = 64" in again and "ns per edge" in again  # the others kept
    # one measurement the normal way, in its own process
    out = run([str(ROOT / "scripts" / "bench.py"), "machine", "--quick", "--repeats", "1"],
              tmp_path)
    assert "GFLOP/s fp32 matmul (512^2)" in out and "failed" not in out


def test_bench_script_measures_on_a_gpu_or_says_why_not(tmp_path):
    import torch

    args = [sys.executable, str(ROOT / "scripts" / "bench.py"), "edges", "gat", "--quick",
            "--repeats", "1", "--device", "cuda", "--out", str(tmp_path / "b.md")]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    if not torch.cuda.is_available():
        assert proc.returncode == 2 and "--device cuda: expected cpu, or cuda" in proc.stderr
        assert not (tmp_path / "b.md").exists()
        pytest.skip("no CUDA device: the refusal is checked, the measurement is not")
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (tmp_path / "b.md").read_text()
    assert "ns per edge" in text and "GATConv" in text and "error" not in text


def test_custom_geometry_example(tmp_path):
    out = run([str(ROOT / "examples" / "custom_geometry.py"), "--epochs", "1", "--graph",
               str(tmp_path / "g.graphml"), "--run-dir", str(tmp_path / "run"), "--figure",
               str(tmp_path / "flow.png")], tmp_path)
    assert "arriving over the bridge from V1" in out
    assert (tmp_path / "g.graphml").is_file() and (tmp_path / "flow.png").is_file()


def test_cortical_surface_example(tmp_path):
    pytest.importorskip("nilearn")
    out = run([str(ROOT / "examples" / "cortical_surface.py"), "--max-steps", "1", "--out",
               str(tmp_path)], tmp_path)
    assert "columns=10242" in out and "communities" in out
    import nibabel as nib

    img = nib.load(tmp_path / "metrics.func.gii")
    assert [d.meta["Name"] for d in img.darrays] == ["receptive_field", "in_strength",
                                                     "community"]
    assert img.darrays[0].data.shape == (10242,)
    assert (tmp_path / "receptive_field.png").stat().st_size > 10_000


def test_fly_optic_lobe_example(tmp_path):
    import importlib.util  # flyvis is looked for, not imported (its dependencies are heavy)

    if importlib.util.find_spec("flyvis") is None:
        pytest.skip("flyvis is not installed (pip install --no-deps flyvis)")
    out = run([str(ROOT / "examples" / "fly_optic_lobe.py"), "--max-steps", "2", "--nulls",
               "2", "--out", str(tmp_path)], tmp_path)
    assert "fly optic lobe (flyvis, extent 5): 91 columns" in out
    assert "attention vs synapses: Spearman rho" in out and "KS D: in_degree" in out
    assert (tmp_path / "compare.png").stat().st_size > 20_000


def test_compare_celegans_example(tmp_path):
    pytest.importorskip("wormneuroatlas")
    out = run([str(ROOT / "examples" / "compare_celegans.py"), "--max-steps", "2", "--nulls",
               "2", "--out", str(tmp_path)], tmp_path)
    assert "C. elegans (witvliet_2020_8, chemical): 180 neurons" in out
    assert "small_world_sigma" in out and "KS D: in_degree" in out
    import json

    result = json.loads((tmp_path / "compare.json").read_text())
    assert result["names"] == ["sheet", "C. elegans"] and "edge_length" in result["ks"]
    assert (tmp_path / "compare.png").stat().st_size > 20_000


def test_bench_geometry_small(tmp_path):
    out = run([str(ROOT / "scripts" / "bench_geometry.py"), "--columns", "2500", "--mesh",
               "400", "--out", str(tmp_path / "b.md")], tmp_path)
    assert "grid_knn16" in out and "failed" not in out
    text = (tmp_path / "b.md").read_text()
    assert "<!-- bench-geometry -->" in text and "mesh_k2_geodesic" in text


def test_bench_partition_small(tmp_path):
    out = run([str(ROOT / "scripts" / "bench_partition.py"), "--scale", "0.01", "--large", "0",
               "--out", str(tmp_path / "b.md")], tmp_path)
    assert "| grid 30x30, knn 8 | 900 | 7,200 | 16 | sfc |" in out
    text = (tmp_path / "b.md").read_text()
    assert "<!-- bench-partition -->" in text and "cortex + EDR 2" in text
    assert "**Default: `method=\"sfc\"`.**" in text


def test_analyze_a_trained_run(tmp_path):
    import json

    from colgraph.connectome import FIGURES, read_connectome

    run([str(ROOT / "scripts" / "train.py"), *TINY, "train.epochs=2",
         "train.connectome_every=1", "plasticity=set", "plasticity.every=4",
         "plasticity.budget=anneal", "plasticity.target_density=0.8", "plasticity.stop=20",
         f"hydra.run.dir={tmp_path}"], tmp_path)
    snapshots = sorted((tmp_path / "connectome").glob("*.graphml"))
    assert [p.name for p in snapshots] == ["epoch0001.graphml", "epoch0002.graphml"]
    first, last = (read_connectome(p).number_of_edges() for p in snapshots)
    assert last < first  # the snapshots follow the wiring as plasticity prunes it
    out = run([str(ROOT / "scripts" / "analyze.py"), str(tmp_path), "--null-models", "2"],
              tmp_path)
    assert "feedforward index" in out and "modularity Q" in out
    assert "Moran's I: in_strength" in out and "receptive_field vs selectivity" in out
    analysis = tmp_path / "analysis"
    assert "significance: 2 null samples per family" in out
    assert "changes from the sheet as built:" in out
    for name in (*FIGURES, "metrics.json", "connectome.graphml", "plasticity.png",
                 "input_map.png", "training.png", "selectivity.png", "significance.png",
                 "changes.png", "connectome.html"):
        assert (analysis / name).stat().st_size > 1000, name
    page = (analysis / "connectome.html").read_text()  # the explorer: a slider over training
    assert '"label":"epoch 1"' in page and '"label":"epoch 2"' in page
    assert '"label":"learned"' in page and "Plotly.newPlot" in page
    m = json.loads((analysis / "metrics.json").read_text())
    for key in ("degrees", "reciprocity", "weighted_reciprocity", "edr", "wiring_total",
                "wiring_per_column", "flow", "modularity", "small_world", "rich_club",
                "weight_distance_rho", "receptive_field", "weighted_clustering", "input_map"):
        assert key in m, key
    assert m["input_map"]["stretch_max"] == 1.0  # a stack's input area is the patch grid
    assert sorted(m["maps"]["morans_i"]) == ["in_strength", "out_strength", "receptive_field",
                                             "selectivity"]
    assert m["maps"]["correlation"]["p_spatial"] is not None
    assert list(m["significance"]["families"]) == ["degree", "spatial", "prior"]
    ch = m["changes"]  # against the sheet as built: plasticity pruned 20% of its edges
    assert ch["trajectory"]["labels"] == ["prior", "epoch0001", "epoch0002", "learned"]
    assert ch["edges"]["pruned"] > 0 and ch["edges"]["kept"] + ch["edges"]["grown"] == last
    assert ch["families"] == ["prior", "prior_length"]
    # against a reference connectome: here the run's own first snapshot
    out = run([str(ROOT / "scripts" / "analyze.py"), str(tmp_path), "--null-models", "2",
               "--reference", str(snapshots[0]), "--out", str(tmp_path / "vs"),
               "--generative", "spatial", "--placement"], tmp_path)
    assert "KS D vs reference: in_degree" in out
    assert "generative models: best spatial (eta " in out
    assert "placement: wire " in out and "excess " in out
    assert (tmp_path / "vs" / "placement.png").stat().st_size > 10_000
    assert (tmp_path / "vs" / "energy.png").stat().st_size > 10_000
    fit = json.loads((tmp_path / "vs" / "metrics.json").read_text())["generative"]
    assert list(fit["models"]) == ["spatial"] and fit["best"]["energy"] <= 1.0
    placed = json.loads((tmp_path / "vs" / "metrics.json").read_text())["placement"]
    assert placed["wire"]["actual"] > 0 and placed["wire"]["optimal"] <= placed["wire"]["actual"]
    result = json.loads((tmp_path / "vs" / "compare.json").read_text())
    assert result["names"] == ["learned", "epoch0001"]
    assert result["metrics"]["edges"] == {"learned": last, "epoch0001": first}
    assert m["flow"]["areas"] == ["area0", "area1"] and m["flow"]["ff_index"] is not None
    assert m["edges"] == last == round(0.8 * 480)  # the analysis sees the CURRENT wiring


def test_analyze_reports_missing_run(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "analyze.py"),
                           str(tmp_path / "nope")], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Checkpoint not found" in proc.stderr
    assert not (tmp_path / "nope").exists()  # nothing written for a run that isn't there


# ------------------------------------------------------- colgraph-analyze's arguments
def analyze_args(argv):
    """``colgraph-analyze argv`` in this process: ``(exit code, stderr)`` of a refusal."""
    import contextlib
    import io

    from colgraph.cli import analyze

    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        analyze([str(a) for a in argv])
    return exit_.value.code, err.getvalue()


@pytest.mark.parametrize("args, match", [
    (["--edge-fraction", "0"], r"--edge-fraction must be in \(0, 1\] \(got 0.0\)"),
    (["--edge-fraction", "1.5"], r"--edge-fraction must be in \(0, 1\]"),
    (["--edge-fraction", "nan"], r"--edge-fraction must be in \(0, 1\] \(got nan\)"),
    (["--null-models", "-1"], r"--null-models must be an integer >= 0 \(got -1\)"),
    (["--seed", "-3"], r"--seed must be an integer >= 0"),
    (["--max-batches", "0"], r"--max-batches must be >= 1"),
    (["--nulls", "degree,spacial"], r"--nulls: Unknown null family 'spacial'. Choices: degree"),
    (["--nulls", ","], r"--nulls: Expected the null families"),
    (["--generative", "spatial,homophily"], r"--generative: unknown model\(s\) homophily. "
                                            r"Choices: spatial"),
    (["--reference", "missing.graphml"], r"--reference .*missing.graphml: no such file"),
    (["--reference", "ref.txt"], r"unsupported connectome format '.txt'. Choices: .graphml"),
    (["--out", "a_file"], r"--out .*a_file: a file is in the way"),
    (["--out", "a_file/sub/analysis"], r"a_file is a file, so no directory can be made"),
])
def test_analyze_checks_its_arguments_before_loading_anything(tmp_path, args, match):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "ref.txt").write_text("x")
    args = [str(tmp_path / a) if a in ("missing.graphml", "ref.txt", "a_file",
                                       "a_file/sub/analysis") else a for a in args]
    # the run does not exist: the argument is refused first, before any checkpoint is read
    code, err = analyze_args([tmp_path / "no_run", *args])
    assert code == 2 and re.search(match, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "ref.txt"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from colgraph.training import train

    from conftest import compose

    path = tmp_path_factory.mktemp("run")
    train(compose(TINY + ["train.max_steps=1", "train.epochs=1"]), path)
    return path


def test_analyze_refuses_a_bad_reference_before_the_export(tiny_run, tmp_path, monkeypatch):
    import networkx as nx

    from colgraph import restore

    monkeypatch.setattr(restore, "load_model", None)  # never reached
    ref = nx.DiGraph()
    ref.add_edge("a", "b", weight=float("nan"))
    nx.write_graphml(ref, tmp_path / "ref.graphml")
    code, err = analyze_args([tiny_run, "--reference", tmp_path / "ref.graphml",
                              "--out", tmp_path / "out"])
    assert code == 1 and err.startswith("colgraph-analyze: error: Expected finite edge "
                                        "'weight' values >= 0"), err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_analyze_refuses_a_diverged_run_and_leaves_nothing(tiny_run, tmp_path):
    import shutil

    from colgraph.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint

    run_dir = tmp_path / "diverged"
    shutil.copytree(tiny_run, run_dir)
    state = load_checkpoint(run_dir)
    state["model"]["columnformer.column_embed"][0, 0] = float("nan")
    del state["path"]
    save_checkpoint(run_dir / CHECKPOINT_NAME, state)
    before = sorted(p.name for p in run_dir.iterdir())
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "analyze.py"), str(run_dir)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "holds a diverged model" in proc.stderr
    assert "Traceback" not in proc.stderr  # the message alone
    assert sorted(p.name for p in run_dir.iterdir()) == before  # no analysis/, no graph


def test_analyze_failing_midway_leaves_no_partial_output(tiny_run, tmp_path, monkeypatch):
    from colgraph import objectives
    from colgraph.cli import analyze

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(objectives, "measure_topography", broken)  # after the graph is written
    with pytest.raises(RuntimeError, match="disk on fire"):
        analyze([str(tiny_run), "--null-models", "1", "--out", str(tmp_path / "out")])
    assert list(tmp_path.iterdir()) == []  # neither out/ nor the staging directory


def test_analyze_prints_undefined_metrics_as_na_with_the_reason(tiny_run, tmp_path, capsys):
    import json

    from colgraph.cli import analyze

    analyze([str(tiny_run), "--prior", "--null-models", "1", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert ", z n/a)" in out and "note: modularity: Q_z n/a: the z-score needs n_null >= 2" in out
    assert "significance: 1 null samples per family (smallest p 0.5)" in out
    assert (tmp_path / "out" / "significance.png").is_file()
    text = (tmp_path / "out" / "metrics.json").read_text()
    m = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in metrics.json"))
    assert any(n.startswith("modularity: Q_z n/a") for n in m["notes"])
    assert m["modularity"]["Q_z"] is None  # undefined: null, which strict parsers read
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the staging dir is gone


def test_bench_sharding_small(tmp_path):
    """Communication, memory and time: one process and two (gloo) of a 256-column sheet."""
    out = run([str(ROOT / "scripts" / "bench_sharding.py"), "communication", "memory", "time",
               "--scale", "0.01", "--geometries", "grid", "random", "--parts", "2", "4",
               "--columns", "256", "--channels", "8", "--batch", "2", "--repeats", "1",
               "--out", str(tmp_path / "b.md")], tmp_path)
    assert "| grid 30x30, knn 8 | 900 | 7,200 | 4 | sfc |" in out
    text = (tmp_path / "b.md").read_text()
    for part in ("communication", "memory", "time"):
        assert text.count(f"<!-- sharding-{part} -->") == 1, part
    # each of 2 processes holds half the columns' parameters, gradients and AdamW state
    assert len(re.findall(r"\| 2 \| [01] \| 128 \| .* \| \*\*50\.\d%\*\* \|", text)) == 2, text
    assert re.search(r"\| 1 \| \d+ \| [\d.]+ \| \*\*1\.00x\*\* \| \d+% \|", text)  # P = 1
    assert "failed" not in text and "killed" not in text


def test_bench_sharding_projection_small(tmp_path):
    out = run([str(ROOT / "scripts" / "bench_sharding.py"), "projection", "--scale", "0.01",
               "--geometries", "grid", "random", "--parts", "2", "--projection-columns", "64",
               "--out", str(tmp_path / "b.md")], tmp_path)
    assert "[communication]" in out  # the halos it needs, measured first
    text = (tmp_path / "b.md").read_text()
    assert "ARITHMETIC, NOT MEASUREMENT" in text and "| 10^7 | 256 | 39,062 |" in text
    assert "41,612 per column" in text  # the default Columnformer at C = 64, 12 inputs
    assert "| 1 (no halo) |" in text and "failed" not in text


@pytest.mark.parametrize("args, match", [
    (["nope"], "unknown part"), (["--parts", "0"], "must be an integer >= 1"),
    (["--scale", "-1"], "--scale must be a finite number > 0"),
    (["projection", "--geometries", "grid"], "projection needs the geometries random"),
    (["--columns", "9", "--k", "16"], "--k 16 needs more than 16 columns"),
    (["--k", "2000"], r"--k 2000 needs more than 2000 columns \(the sheet has 1024\)"),
])
def test_bench_sharding_refuses_bad_arguments(tmp_path, args, match):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_sharding.py"), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and re.search(match, proc.stderr), proc.stderr


def test_bench_migration_small(tmp_path):
    out = run([str(ROOT / "scripts" / "bench_migration.py"), "--columns", "1500", "--repeats",
               "1", "--out", str(tmp_path / "b.md")], tmp_path)
    assert "one migration: quadratic, 1 sweep" in out
    assert "<!-- migration-scale -->" in (tmp_path / "b.md").read_text()


def test_experiment_migration_small(tmp_path):
    """Two steps of each run (the first migration at step 1): the table, the summary line
    and the figure."""
    out = run([str(ROOT / "scripts" / "experiment_migration.py"), "--max-steps", "2",
               "--every", "1", "--out", str(tmp_path / "b.md"), "--figure",
               str(tmp_path / "migration.png")], tmp_path)
    assert "| scrambled + migration |" in out and "of the scrambled excess" in out
    assert "<!-- migration-digits -->" in (tmp_path / "b.md").read_text()
    assert (tmp_path / "migration.png").stat().st_size > 20_000
