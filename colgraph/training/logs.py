"""What a run writes as it goes: console messages, ``metrics.csv`` / ``plasticity.csv`` with
a fixed schema, and TensorBoard scalars.

Messages go through the ``colgraph`` logger: under a hydra job through hydra's handlers (the
console and ``train.log``), called from Python as plain lines on stdout.
"""
from __future__ import annotations

import contextlib
import csv
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

from ..checkpoint import write_error

__all__ = ["log", "console_logging", "CsvLog", "TensorBoard", "metrics_schema", "epoch_line",
           "truncate_log"]

log = logging.getLogger("colgraph")  # hydra's job logging puts it in <run dir>/train.log


class _Stdout(logging.StreamHandler):
    """A handler on whatever ``sys.stdout`` is when a record arrives (pytest, notebooks and
    redirections replace it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns one: ignored
        pass


def console_logging() -> None:
    """Under a hydra job, colgraph's messages go through hydra's handlers (console and
    ``train.log``); called from Python, they are plain lines on stdout."""
    from hydra.core.hydra_config import HydraConfig

    ours = [h for h in log.handlers if isinstance(h, _Stdout)]
    if HydraConfig.initialized():
        for h in ours:
            log.removeHandler(h)
        log.propagate = True
    elif not ours:
        log.addHandler(_Stdout())
        log.propagate = False
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


EVALUATION = ("test_loss", "wiring_length", "smoothness", "silent", "active_columns")


def metrics_schema(stats: Sequence[str]) -> list[str]:
    """The columns of ``metrics.csv`` for a task with per-batch statistics ``stats``
    (:attr:`colgraph.tasks.Task.stats`): fixed for the whole run, so an unevaluated epoch
    leaves the test columns empty instead of changing the header."""
    return ["epoch", "step", "train_loss", *(f"train_{s}" for s in stats), "lr", "edges",
            "skipped_batches", "time", *(f"test_{s}" for s in stats), *EVALUATION]


class CsvLog:
    """Rows appended to a CSV file under ONE header for the whole run: ``fields``, or the
    first row's keys. A row may leave fields out (empty cells); a key outside the header is
    a programming error and raises. A file already there (a resumed run) keeps its rows; if
    its header differs (written by an older version), it is rewritten once under this
    header, extended by the old columns this one lacks.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "m.csv"
        >>> out = CsvLog(path, ["epoch", "loss", "test"])
        >>> out.append({"epoch": 1, "loss": 0.5}); out.append({"epoch": 2, "loss": 0.4, "test": 0.9})
        >>> path.read_text().splitlines()
        ['epoch,loss,test', '1,0.5,', '2,0.4,0.9']
    """

    def __init__(self, path: str | os.PathLike, fields: Sequence[str] | None = None,
                 checkpoint: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        self.fields = list(fields) if fields is not None else None
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        if self.path.exists():
            with self.path.open(newline="") as f:
                reader = csv.DictReader(f)
                header, rows = reader.fieldnames, list(reader)
            if header and self.fields is None:
                self.fields = list(header)
            elif header and header != self.fields:
                self.fields += [k for k in header if k not in self.fields]
                self._write(rows, "w")

    def append(self, row: dict[str, Any]) -> None:
        if self.fields is None:
            self.fields = list(row)
        unknown = [k for k in row if k not in self.fields]
        if unknown:
            raise ValueError(f"{self.path.name} has the columns {', '.join(self.fields)}; "
                             f"this row brings {', '.join(unknown)} as well. Declare them in "
                             f"the log's fields.")
        self._write([row], "a")

    def _write(self, rows: list[dict[str, Any]], mode: str) -> None:
        """Append ``rows`` (mode ``a``, with the header into a new file) or replace the file
        with them atomically (mode ``w``). A file the disk refuses (full, read-only, ...)
        raises :class:`~colgraph.checkpoint.CheckpointWriteError` naming the file, the
        reason and the run's last good checkpoint (``checkpoint``, when it exists)."""
        path = self.path if mode == "a" else self.path.with_suffix(".csv.tmp")
        try:
            new = mode == "w" or not self.path.exists() or self.path.stat().st_size == 0
            with path.open(mode, newline="") as f:
                w = csv.DictWriter(f, fieldnames=self.fields, restval="")
                if new:
                    w.writeheader()
                w.writerows(rows)
            if mode == "w":
                os.replace(path, self.path)
        except OSError as e:
            if mode == "w":
                with contextlib.suppress(OSError):  # a read-only disk keeps it
                    path.unlink(missing_ok=True)
            last = self.checkpoint if self.checkpoint and self.checkpoint.exists() else None
            raise write_error(e, f"Could not write the log {self.path}", self.path.parent,
                              last) from None


def truncate_log(path: str | os.PathLike, keep: Callable[[dict[str, str]], bool]) -> int:
    """Keep the rows of the CSV log ``path`` that ``keep`` accepts (a row it cannot read,
    e.g. the torn last line of a process killed mid-write, is dropped), rewritten atomically;
    returns how many rows went.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "m.csv"
        >>> _ = path.write_text(chr(10).join(["step,loss", "1,0.5", "2,0.4", "3,0."]))
        >>> truncate_log(path, lambda row: int(row["step"]) <= 2)
        1
        >>> path.read_text().splitlines()
        ['step,loss', '1,0.5', '2,0.4']
    """
    path = Path(path)
    if not path.is_file():
        return 0
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))

    def readable(row: dict[str, str]) -> bool:
        try:
            return None not in row.values() and bool(keep(row))
        except (TypeError, ValueError, KeyError):
            return False

    kept = [r for r in rows if readable(r)]
    if len(kept) < len(rows) or not path.read_text().endswith("\n"):
        CsvLog(path)._write(kept, "w")
    return len(rows) - len(kept)


class TensorBoard:
    """Scalars to ``RUN_DIR/tb`` when TensorBoard is installed; nothing otherwise.

    ``purge_step``: a run resumed in its directory from a checkpoint at step ``k`` passes
    ``k + 1``, and TensorBoard hides the points a crashed run wrote from there on, which the
    resumed run writes anew (every point at step ``s`` comes from the run's first ``s``
    updates, so the points up to ``k`` are the checkpoint's)."""

    def __init__(self, run_dir: Path, enabled: bool = True,
                 purge_step: int | None = None) -> None:
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=purge_step)
            except ImportError:  # tensorboard is optional
                self.writer = None

    def row(self, row: dict[str, float], step: int, prefix: str = "") -> None:
        """Every value of a log row but its position (``epoch``, ``step``)."""
        if self.writer is None:
            return
        for k, v in row.items():
            if k not in ("epoch", "step"):
                self.writer.add_scalar(prefix + k, v, step)
        self.writer.flush()

    def scalar(self, name: str, value: Any, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(name, float(value), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def epoch_line(head: str, metrics: dict[str, Any], key: str) -> str:
    """``epoch  3 | loss 0.123 | train acc 0.950 | test acc 0.940 | wiring length 1.50``."""
    nan = float("nan")  # every batch of the epoch skipped: no training statistics
    return (f"{head} | loss {metrics.get('train_loss', nan):.3f} | train {key} "
            f"{metrics.get('train_' + key, nan):.3f} | test {key} "
            f"{metrics['test_' + key]:.3f} | wiring length {metrics['wiring_length']:.3f}")
