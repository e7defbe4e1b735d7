"""Tables and figures over many runs: what a sweep changed and what each run reached.

* :func:`collect_runs` finds runs (directories with a ``metrics.csv``) under the given
  paths: a run directory, a hydra multirun directory (one numbered sub-directory per job)
  or any folder of them. Each run's swept settings come from hydra's
  ``.hydra/overrides.yaml``, its final metrics from the last row of ``metrics.csv``.
* :class:`SweepSummary` is a hydra callback (registered in ``configs/config.yaml``): after
  every job of a multirun (``python scripts/train.py -m ...``, any launcher or sweeper) it
  brings ``summary.csv`` in the sweep directory up to date, and at the end prints the table.
  A job that fails leaves ``failed.txt`` (its error) in its directory and is listed with
  ``status`` ``failed: <error>``; the jobs that finished keep their rows (hydra stops a
  multirun at a failed job's batch, before its end: the summary is already written).
* :func:`plot_summary` draws the final metric of every run and its test curve over epochs
  (``scripts/summarize.py RUN_DIR...``).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Iterable

from hydra.experimental.callback import Callback

__all__ = ["collect_runs", "summary_table", "common_settings", "write_summary", "format_table",
           "plot_summary", "SweepSummary", "FAILED_NAME"]

# final metrics reported for every run, when the run has them (the task's own test_<stat>
# columns come first)
REPORTED = ("test_loss", "wiring_length", "smoothness", "epoch", "step", "time")
FAILED_NAME = "failed.txt"  # in a multirun job's directory: the job raised this error


def _is_run(path: Path) -> bool:
    return (path / "metrics.csv").is_file() or (path / FAILED_NAME).is_file()


def _numeric_key(path: Path) -> tuple:
    return (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name)


def collect_runs(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Every run under ``paths`` (each a run, a multirun directory or a folder of runs), in
    order: ``{"run": path, "overrides": {key: value}, "final": {metric: value}, "curve":
    [rows of metrics.csv], "failed": the error of a failed multirun job, else None}``."""
    import yaml

    runs, seen = [], set()
    for root in paths:
        root = Path(root).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"No such run or sweep directory: {root}.")
        found = [root] if _is_run(root) else sorted(
            {p.parent for name in ("metrics.csv", FAILED_NAME) for p in root.rglob(name)},
            key=lambda p: [_numeric_key(Path(part)) for part in p.relative_to(root).parts])
        if not found:
            raise ValueError(f"{root} holds no runs (no metrics.csv below it). Pass run "
                             f"directories or a hydra multirun directory.")
        for run in found:
            if run.resolve() in seen:
                continue
            seen.add(run.resolve())
            overrides = {}
            ov = run / ".hydra" / "overrides.yaml"
            if ov.is_file():
                for item in yaml.safe_load(ov.read_text()) or []:
                    key, _, value = str(item).partition("=")
                    if not key.lstrip("+~").startswith("hydra."):
                        overrides[key.lstrip("+~")] = value
            rows = []
            if (run / "metrics.csv").is_file():
                with (run / "metrics.csv").open(newline="") as f:
                    rows = list(csv.DictReader(f))
            failed = ((run / FAILED_NAME).read_text().strip() or "failed"
                      if (run / FAILED_NAME).is_file() else None)
            if not rows and failed is None:
                continue
            runs.append({"run": str(run), "overrides": overrides,
                         "final": rows[-1] if rows else {}, "curve": rows, "failed": failed})
    return runs


def summary_table(runs: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: the run, its status when a run failed (``ok`` or ``failed:
    <error>``), each swept setting (overridden keys whose value differs between runs; every
    override for a single run), then the final test metrics (empty for a run that failed
    before its first epoch ended)."""
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r["overrides"] if k not in keys]
    if len(runs) > 1:
        keys = [k for k in keys if len({r["overrides"].get(k) for r in runs}) > 1]
    metrics: list[str] = []
    for r in runs:
        metrics += [k for k in r["final"] if k.startswith("test_") and k != "test_loss"
                    and k not in metrics]
    metrics += [m for m in REPORTED if any(m in r["final"] for r in runs)]
    status = any(r.get("failed") for r in runs)
    header = ["run", *(["status"] if status else []), *keys, *metrics]
    rows = [[r["run"], *([_status(r)] if status else []),
             *(r["overrides"].get(k, "") for k in keys),
             *(r["final"].get(m, "") for m in metrics)] for r in runs]
    return header, rows


def _status(run: dict[str, Any]) -> str:
    failed = run.get("failed")
    return "ok" if not failed else "failed: " + " ".join(failed.split())[:300]


def _fmt(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f"{f:.4g}" if not f.is_integer() else str(int(f))


def write_summary(runs: list[dict[str, Any]], path: str | Path) -> Path:
    """The summary table as CSV, replacing ``path`` atomically (jobs running in parallel
    may each rewrite it)."""
    header, rows = summary_table(runs)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def format_table(runs: list[dict[str, Any]], base: str | Path | None = None) -> str:
    """The summary as an aligned text table (run paths relative to ``base``)."""
    header, rows = summary_table(runs)
    rows = [[row[0], *map(_fmt, row[1:])] for row in rows]  # 4 significant digits
    if base is not None:
        for row in rows:
            try:
                row[0] = str(Path(row[0]).relative_to(base)) or "."
            except ValueError:
                pass
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    common = common_settings(runs) if len(runs) > 1 else {}
    head = ["common: " + " ".join(f"{k}={v}" for k, v in common.items())] if common else []
    return "\n".join([*head, line(header), line("-" * w for w in widths), *map(line, rows)])


def common_settings(runs: list[dict[str, Any]]) -> dict[str, str]:
    """Overrides every run shares (the sweep's fixed settings)."""
    first = runs[0]["overrides"] if runs else {}
    return {k: v for k, v in first.items() if all(r["overrides"].get(k) == v for r in runs)}


def _label(run: dict[str, Any], keys: list[str]) -> str:
    """A run's swept settings (``keys``), else its directory name."""
    ov = run["overrides"]
    text = " ".join(f"{k}={ov[k]}" for k in keys if k in ov)
    return text or Path(run["run"]).name


def plot_summary(runs: list[dict[str, Any]], path: str | Path, metric: str | None = None):
    """Two panels: each run's final ``metric`` (default: the first test metric) and its
    test curve over epochs. Returns the figure (also saved to ``path``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    header, _ = summary_table(runs)
    if metric is None:
        metric = next((h for h in header if h.startswith("test_")), None)
    if metric is None:
        raise ValueError("The runs have no test metrics to plot (no test_* column in their "
                         "metrics.csv).")
    common = common_settings(runs) if len(runs) > 1 else {}
    swept = [h for h in header[1:] if any(h in r["overrides"] for r in runs)]
    labels = [_label(r, swept) for r in runs]
    final = [float(r["final"].get(metric, "nan") or "nan") for r in runs]
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(12, max(3.0, 0.4 * len(runs) + 1.5)),
                                       constrained_layout=True)
    y = range(len(runs))
    bars.barh(list(y), final, color="tab:blue")
    bars.set_yticks(list(y), labels, fontsize=8)
    bars.invert_yaxis()
    bars.set_xlabel(f"final {metric}")
    bars.set_title(f"Final {metric} per run")
    for i, v in zip(y, final):
        bars.text(v, i, f" {v:.4g}", va="center", fontsize=8)
    for run, label in zip(runs, labels):
        pts = [(float(row["epoch"]), float(row[metric])) for row in run["curve"]
               if row.get(metric) not in (None, "")]
        if pts:
            curves.plot(*zip(*pts), marker="o", ms=3, label=label)
    curves.set_xlabel("epoch")
    curves.set_ylabel(metric)
    curves.set_title(f"{metric} during training")
    if len(runs) <= 12:
        curves.legend(fontsize=7)
    if common:
        text = " ".join(f"{k}={v}" for k, v in common.items())
        fig.suptitle(f"{len(runs)} runs; common: " + (text if len(text) < 160
                                                       else text[:157] + "..."), fontsize=8)
    fig.savefig(path, dpi=120)
    return fig


class SweepSummary(Callback):
    """Hydra callback: ``summary.csv`` in a multirun's sweep directory, rewritten after every
    job (so the jobs that finished are in it even when another fails and hydra stops the
    multirun), and the table printed at the end (``hydra.callbacks.summary`` in
    ``configs/config.yaml``). A failed job's error goes to ``failed.txt`` in its directory
    and into its row."""

    def on_job_end(self, config: Any, job_return: Any = None, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        if config.hydra.mode != RunMode.MULTIRUN or job_return is None:
            return
        run_dir = Path(config.hydra.runtime.output_dir)
        marker = run_dir / FAILED_NAME
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            if job_return.status == JobStatus.FAILED:
                error = getattr(job_return, "_return_value", None)  # .return_value re-raises
                text = f"{type(error).__name__}: {error}" if error is not None else "failed"
                marker.write_text(text + "\n")
                print(f"Job {config.hydra.job.num} failed ({' '.join(text.split())[:200]}); "
                      f"{sweep_dir / 'summary.csv'} lists the jobs that finished and this "
                      f"one as failed.")
            else:
                marker.unlink(missing_ok=True)  # a job run again into the same directory
            self._write(sweep_dir)
        except OSError as e:  # a full or read-only disk: the job's own error says more
            print(f"Could not update the sweep summary in {sweep_dir}: {e}")

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        runs = self._write(sweep_dir)
        if runs:
            print(f"\nSweep summary ({len(runs)} runs, {sweep_dir / 'summary.csv'}):\n"
                  f"{format_table(runs, sweep_dir)}")

    @staticmethod
    def _write(sweep_dir: Path) -> list[dict[str, Any]]:
        """Rewrite ``summary.csv`` from the runs in ``sweep_dir``; the runs."""
        try:
            runs = collect_runs([sweep_dir])
        except (FileNotFoundError, ValueError) as e:  # e.g. no job got far enough
            print(f"No sweep summary: {e}")
            return []
        write_summary(runs, sweep_dir / "summary.csv")
        return runs
