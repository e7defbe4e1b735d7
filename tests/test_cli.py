"""The command lines (colgraph-train / colgraph-analyze / python -m colgraph), the packaged
configs, and weights-only exports."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from colgraph.allocator import find_allocator
from conftest import TINY, compose

ROOT = Path(__file__).resolve().parents[1]


def run(args, cwd, ok=True, env=None):
    proc = subprocess.run([sys.executable, "-m", "colgraph", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def errors(proc) -> str:
    """stderr without what colgraph.allocator says where it cannot use tcmalloc (not
    installed; an interpreter this test's user cannot re-run)."""
    return "\n".join(line for line in proc.stderr.strip().splitlines()
                     if not line.startswith("colgraph: "))


def test_module_entry_point_trains_and_analyzes_from_any_directory(tmp_path):
    default = {k: v for k, v in os.environ.items() if k != "COLGRAPH_ALLOCATOR"}  # see conftest
    run(["train", *TINY, "train.max_steps=2", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path,
        env=default)
    log = (tmp_path / "run" / "train.log").read_text()  # hydra's job log keeps its name
    # the command re-executed itself under the fast allocator where one is installed
    library = find_allocator() or "system"
    expected = next(name for name in ("tcmalloc", "jemalloc", "system") if name in library)
    assert f"CPU allocator: {expected}" in log
    out = run(["analyze", str(tmp_path / "run"), "--prior", "--null-models", "1"], tmp_path)
    assert "feedforward index" in out.stdout
    assert (tmp_path / "run" / "analysis" / "connectome.graphml").is_file()


def test_module_without_a_command_says_how():
    proc = run([], ROOT, ok=False)
    assert proc.returncode == 2 and "usage: python -m colgraph {train,analyze,allocator}" in proc.stderr


def test_analyze_refuses_bad_arguments(tmp_path):
    proc = run(["analyze", str(tmp_path), "--max-batches", "0"], tmp_path, ok=False)
    assert proc.returncode == 2 and "--max-batches must be >= 1" in proc.stderr
    proc = run(["analyze", str(tmp_path), "--data", str(tmp_path / "gone.npz")], tmp_path,
               ok=False)
    assert proc.returncode == 2 and "--data" in proc.stderr and "no such file" in proc.stderr


def test_console_scripts_are_declared():
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("colgraph-train") == "colgraph.cli:train_command"
    assert scripts.get("colgraph-analyze") == "colgraph.cli:analyze_command"


def test_wheel_ships_the_configs_and_every_package(tmp_path):
    """pip builds a wheel holding colgraph/configs (what colgraph-train reads when installed
    without the source tree) and each subpackage (pyproject lists them by hand)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "--no-build-isolation", str(ROOT), "-w", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = zipfile.ZipFile(next(tmp_path.glob("colgraph-*.whl"))).namelist()
    shipped = {n for n in names if n.startswith("colgraph/configs/")}
    expected = {"colgraph/configs/" + str(p.relative_to(ROOT / "configs"))
                for p in (ROOT / "configs").rglob("*.yaml")}
    assert expected and expected <= shipped
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "colgraph").rglob("__init__.py")}
    assert all(f"{p}/__init__.py" in names for p in packages), packages


def test_config_dir_is_found():
    from colgraph.cli import config_dir

    assert (config_dir() / "config.yaml").is_file()


def test_export_model_is_weights_only(tmp_path):
    import colgraph
    from colgraph.checkpoint import load_checkpoint
    from colgraph.training import train

    run_dir = tmp_path / "run"
    train(compose(TINY + ["train.max_steps=2"]), run_dir)
    out = colgraph.export_model(run_dir, tmp_path / "weights.pt")
    state = load_checkpoint(out)
    assert state["weights_only"] and "optimizer" not in state and "rng" not in state
    assert out.stat().st_size < 0.6 * (run_dir / "checkpoint.pt").stat().st_size
    model, geometry, cfg, data = colgraph.load_model(out)  # rebuilds and evaluates
    full, *_ = colgraph.load_model(run_dir, with_data=False)
    x = data.x_test[:8]
    with torch.no_grad():
        assert torch.equal(model.sheet(x).state, full.sheet(x).state)
    with pytest.raises(ValueError, match=r"weights-only export .* train.init_from="):
        train(compose(TINY + ["train.max_steps=3", f"train.resume={out}"]), tmp_path / "r2")
    train(compose(TINY + ["train.max_steps=1", f"train.init_from={out}"]), tmp_path / "ft")
    with pytest.raises(ValueError, match=r"would overwrite the checkpoint"):
        colgraph.export_model(out, out)


def test_moved_data_file_is_found_with_data_path(tmp_path):
    import colgraph
    from colgraph.training import train

    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x=rng.random((80, 8, 8)).astype(np.float32), y=np.arange(80) % 4)
    run_dir = tmp_path / "run"
    train(compose(TINY + ["data=file", f"data.path={path}", "train.max_steps=1"]), run_dir)
    moved = path.rename(tmp_path / "moved.npz")
    with pytest.raises(FileNotFoundError):
        colgraph.load_model(run_dir)
    model, _, _, data = colgraph.load_model(run_dir, data_path=moved)
    assert data.num_classes == 4
    with pytest.raises(ValueError, match=r"replaces the data file of a data=file run"):
        digits = tmp_path / "digits"
        train(compose(TINY + ["train.max_steps=1"]), digits)
        colgraph.load_model(digits, data_path=moved)


def test_failed_train_exits_non_zero_with_the_message_and_no_traceback(tmp_path):
    """A refused setting and a diverged run: status 1, the reason, no traceback."""
    proc = run(["train", *TINY, "train.max_skipped_fraction=2",
                f"hydra.run.dir={tmp_path / 'bad'}"], tmp_path, ok=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "train.max_skipped_fraction must be in [0, 1]" in out
    assert "Traceback" not in out
    proc = run(["train", *TINY, "optim.lr=1e6", "train.skip_nonfinite=true",
                f"hydra.run.dir={tmp_path / 'diverged'}"], tmp_path, ok=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "the run is diverging" in out and "Traceback" not in out
    assert "the run is diverging" in (tmp_path / "diverged" / "train.log").read_text()


@pytest.fixture
def read_only(tmp_path):
    """A directory without write permission, and the command prefix that runs a process as
    an ordinary user (root may write anyway)."""
    import os
    import shutil
    import tempfile

    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("root writes anywhere, and setpriv is missing to run as another user")
    prefix = (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
              if os.geteuid() == 0 else [])
    top = Path(tempfile.mkdtemp())  # reachable by that user (pytest's tmp_path is not)
    top.chmod(0o755)
    (top / "ro").mkdir()
    (top / "ro").chmod(0o555)
    yield top / "ro", prefix
    (top / "ro").chmod(0o755)
    shutil.rmtree(top)


@pytest.mark.parametrize("args, key, where", [
    (["hydra.run.dir={ro}/run"], "hydra.run.dir", "{ro}/run"),
    (["hydra.run.dir={ro}/day/${{now:%H-%M-%S}}"], "hydra.run.dir", "{ro}/day"),
    (["-m", "hydra.sweep.dir={ro}/sweep", "train.seed=1,2"], "hydra.sweep.dir", "{ro}/sweep"),
])
def test_an_unwritable_hydra_output_directory_is_refused_before_hydra(read_only, args, key,
                                                                      where):
    """hydra would fail making it, with its own traceback: refused first, as the run
    directory is, naming the directory, the reason and the setting that moves it."""
    ro, prefix = read_only
    args = [a.format(ro=ro) for a in args]
    proc = subprocess.run([*prefix, sys.executable, "-m", "colgraph", "train", *TINY, *args],
                          cwd=ro, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(ro.parent),
                               "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert errors(proc) == (
        f"Cannot write the run directory {where.format(ro=ro)}: permission denied: the "
        f"directory is not writable by this user (PermissionError, errno 13). Make {ro} "
        f"writable (chmod u+w), or write the run elsewhere ({key}=...).")
    assert list(ro.iterdir()) == []


def test_a_file_in_the_way_of_hydra_run_dir_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    proc = run(["train", *TINY, f"hydra.run.dir={tmp_path / 'f' / 'run'}"], tmp_path, ok=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert errors(proc) == (f"Cannot write the run directory {tmp_path / 'f' / 'run'}: "
                                   f"{tmp_path / 'f'} is a file, so no directory can be made "
                                   f"there. Write the run elsewhere (hydra.run.dir=...).")


def test_hydra_flags_that_only_print_need_no_writable_directory(read_only):
    ro, prefix = read_only
    proc = subprocess.run([*prefix, sys.executable, "-m", "colgraph", "train", "--cfg", "job",
                           f"hydra.run.dir={ro}/run"], cwd=ro, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(ro.parent),
                                            "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0 and "geometry:" in proc.stdout, proc.stderr[-2000:]
