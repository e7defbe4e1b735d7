"""What colgraph's commands set up first, before torch loads: how OpenMP threads wait, and
the CPU memory allocator (:mod:`colgraph.allocator`).

Two jobs on one machine's cores (a sweep's workers, a user's second run) slow each other
far more than sharing the cores explains when torch's OpenMP threads (libgomp, on Linux)
spin-wait between parallel regions: by default each idle thread spins 300,000 times before
it sleeps, taking the core from the other job's threads. :func:`tune_threads` lowers that
to 1,000 spins. Measured on this repository's digits main job (2 epochs, 2 cores, two
copies at once; BENCHMARKS.md): 4.7x slower than alone with libgomp's default, 1.6x with
1,000 spins, and alone it is as fast as before (``OMP_WAIT_POLICY=PASSIVE``, which never
spins, made the job alone 10% slower, and a step at N = 1024 up to 2x slower).
"""
from __future__ import annotations

import os
import sys

from .allocator import use_fast_allocator

__all__ = ["tune_threads", "setup_process", "SPIN_COUNT"]

SPIN_COUNT = 1000  # spins of an idle OpenMP thread before it sleeps (libgomp: 300,000)


def tune_threads() -> bool:
    """Make idle OpenMP threads sleep after ``SPIN_COUNT`` spins (``GOMP_SPINCOUNT``) so
    that jobs sharing cores degrade gracefully; returns whether the setting is in effect.

    libgomp reads it when it loads, with torch: call this before ``import torch`` (the
    commands do), else it returns ``False`` and changes nothing. A setting of the user's
    own, ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY``, wins (``OMP_WAIT_POLICY=ACTIVE``
    restores spinning; ``PASSIVE`` never spins). Wait policies change timing only, never
    results.
    """
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return os.environ.get("GOMP_SPINCOUNT") == str(SPIN_COUNT)
    if "torch" in sys.modules:  # libgomp has read its environment already
        return False
    os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    return True


def setup_process() -> str:
    """What colgraph's command-line entry points do first: :func:`tune_threads`, then
    :func:`colgraph.use_fast_allocator` (which may re-execute the command under tcmalloc:
    the thread setting travels in its environment). Returns the allocator in use. For
    entry points only (a script's ``if __name__ == "__main__":``), never a notebook."""
    tune_threads()
    return use_fast_allocator()
