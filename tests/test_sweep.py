"""Sweeps: a hydra multirun ends with a summary table; summarize.py tables and plots any
runs; the Slurm launcher and the optuna search configs compose (and the search runs)."""
import csv
import subprocess
import sys

import pytest

from conftest import CONFIG_DIR, TINY

ROOT = CONFIG_DIR.parent
FAST = TINY + ["train.epochs=1", "train.max_steps=2"]


def _multirun(tmp_path, *overrides, returncode=0):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "-m", *FAST,
                           *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == returncode, proc.stderr[-3000:]
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


def test_a_failed_job_keeps_the_summary_of_the_others(tmp_path):
    """Issue 21: one job of a multirun fails (hydra then stops before the multirun's end):
    summary.csv still lists the jobs that finished, with their metrics, and the failed one
    as failed, with its error; the command's exit code is not 0."""
    out = _multirun(tmp_path, "train.epochs=1,0,1", returncode=1)
    sweep = tmp_path / "sweep"
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["run"].rsplit("/", 1)[-1] for r in rows] == ["0", "1", "2"]
    assert [r["status"][:26] for r in rows] == ["ok", "failed: ValueError: The co", "ok"]
    assert "train.epochs" in rows[1]["status"] and rows[1]["test_acc"] == ""
    assert all(0 <= float(rows[i]["test_acc"]) <= 1 for i in (0, 2))
    assert (sweep / "1" / "failed.txt").read_text().startswith("ValueError: ")
    assert "Job 1 failed (ValueError" in out


def _job(tmp_path, num, status, error=None, metrics=True):
    """A multirun job's directory (with a metrics.csv when ``metrics``), its hydra config
    and return, as hydra's on_job_end passes them."""
    from hydra.core.utils import JobReturn, JobStatus
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    run = tmp_path / "sweep" / str(num)
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(f"- optim.lr={num}\n")
    if metrics:
        (run / "metrics.csv").write_text("epoch,test_acc\n1,0.5\n")
    config = OmegaConf.create({"hydra": {
        "mode": RunMode.MULTIRUN, "runtime": {"output_dir": str(run)},
        "sweep": {"dir": str(tmp_path / "sweep")}, "job": {"num": num}}})
    ret = JobReturn()
    ret.status = JobStatus[status]
    ret.return_value = error
    return config, ret


def test_summary_is_brought_up_to_date_after_each_job(tmp_path, capsys):
    from colgraph.sweep import SweepSummary, collect_runs

    summary, path = SweepSummary(), tmp_path / "sweep" / "summary.csv"
    summary.on_job_end(*_job(tmp_path, 0, "COMPLETED"))
    assert "status" not in next(csv.DictReader(path.open()))  # all well: the usual columns
    # a job failing mid-run (its first epochs in metrics.csv) and one failing at once
    summary.on_job_end(*_job(tmp_path, 1, "FAILED", FloatingPointError("At step 7\nlr")))
    summary.on_job_end(*_job(tmp_path, 2, "FAILED", KeyError("x"), metrics=False))
    rows = list(csv.DictReader(path.open()))
    assert [(r["status"], r["test_acc"]) for r in rows] == [
        ("ok", "0.5"), ("failed: FloatingPointError: At step 7 lr", "0.5"),
        ("failed: KeyError: 'x'", "")]
    assert "Job 2 failed (KeyError: 'x')" in capsys.readouterr().out
    # job 1 run again into the same directory, successfully: no longer failed
    config, ret = _job(tmp_path / "again", 1, "COMPLETED")
    config.hydra.runtime.output_dir = str(tmp_path / "sweep" / "1")
    summary.on_job_end(config, ret)
    assert [r["failed"] is None for r in collect_runs([tmp_path / "sweep"])] == [
        True, True, False]


def test_a_single_run_writes_no_summary(tmp_path):
    from hydra.types import RunMode

    from colgraph.sweep import SweepSummary

    config, ret = _job(tmp_path, 0, "FAILED", ValueError("bad"))
    config.hydra.mode = RunMode.RUN
    SweepSummary().on_job_end(config, ret)
    assert not (tmp_path / "sweep" / "summary.csv").exists()
    assert not (tmp_path / "sweep" / "0" / "failed.txt").exists()


def test_a_summary_the_disk_refuses_does_not_hide_the_job(tmp_path, capsys, monkeypatch):
    """A full or read-only disk while the summary is written: said, never raised (the job's
    own result stands)."""
    import errno

    from colgraph import sweep

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sweep, "write_summary", full)
    sweep.SweepSummary().on_job_end(*_job(tmp_path, 0, "COMPLETED"))
    assert "Could not update the sweep summary" in capsys.readouterr().out


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
