"""Sweeps: a hydra multirun ends with a summary table; summarize.py tables and plots any
runs; the Slurm launcher and the optuna search configs compose (and the search runs)."""
import csv
import subprocess
import sys

import pytest

from conftest import CONFIG_DIR, TINY

ROOT = CONFIG_DIR.parent
FAST = TINY + ["train.epochs=1", "train.max_steps=2"]


def _multirun(tmp_path, *overrides):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "-m", *FAST,
                           *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def sweep4(tmp_path_factory):
    """One 4-job multirun shared by the tests below: (sweep dir, printed output)."""
    tmp = tmp_path_factory.mktemp("sweep4")
    return tmp / "sweep", _multirun(tmp, "wiring_cost.weight=0,0.1", "model.steps=2,3")


def test_multirun_writes_a_summary_and_summarize_plots_it(tmp_path, sweep4):
    sweep, out = sweep4
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 4 and [r["run"].rsplit("/", 1)[-1] for r in rows] == ["0", "1", "2", "3"]
    assert {(r["wiring_cost.weight"], r["model.steps"]) for r in rows} == {
        ("0", "2"), ("0", "3"), ("0.1", "2"), ("0.1", "3")}
    assert all(0 <= float(r["test_acc"]) <= 1 for r in rows)
    assert "model.channels" not in rows[0]  # the same in every run: not a swept column
    assert "Sweep summary (4 runs" in out and "common: geometry.widths=[8,4]" in out
    # the same table and a figure from the run directories
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "summarize.py"),
                           str(sweep / "0"), str(sweep / "3"), "--out", str(tmp_path / "s.csv")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    two = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert len(two) == 2 and (tmp_path / "s.png").stat().st_size > 10_000


def test_plot_summary_labels_its_panels(tmp_path, sweep4):
    from colgraph.sweep import collect_runs, plot_summary

    fig = plot_summary(collect_runs([sweep4[0]]), tmp_path / "p.png")
    bars, curves = fig.axes
    assert bars.get_xlabel() == "final test_acc" and "per run" in bars.get_title()
    assert sorted(t.get_text() for t in bars.get_yticklabels()) == [
        "model.steps=2 wiring_cost.weight=0", "model.steps=2 wiring_cost.weight=0.1",
        "model.steps=3 wiring_cost.weight=0", "model.steps=3 wiring_cost.weight=0.1"]
    assert curves.get_xlabel() == "epoch" and curves.get_ylabel() == "test_acc"
    assert "common:" in fig._suptitle.get_text()


def test_collect_runs_errors(tmp_path):
    from colgraph.sweep import collect_runs

    with pytest.raises(FileNotFoundError, match="No such run or sweep directory"):
        collect_runs([tmp_path / "nope"])
    with pytest.raises(ValueError, match="holds no runs"):
        collect_runs([tmp_path])


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    from colgraph.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True,
                      overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert launcher.cpus_per_task == 8 and launcher.timeout_min == 240


def test_optuna_search_runs_trials(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    import yaml

    _multirun(tmp_path, "hydra/sweeper=search", "hydra.sweeper.n_trials=2")
    sweep = tmp_path / "sweep"
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 2 and {"optim.lr", "wiring_cost.weight"} <= set(rows[0])
    assert all(3e-4 <= float(r["optim.lr"]) <= 1e-2 for r in rows)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    # model.steps is fixed by the command line (TINY), which the sweeper respects
    assert set(best["best_params"]) == {"optim.lr", "wiring_cost.weight"}
    assert best["best_value"] == max(float(r["test_acc"]) for r in rows)
