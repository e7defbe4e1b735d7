"""CPU memory-allocator settings for training: explicit calls, never applied at import.

Untied layers make every weight gradient and every state a large tensor, and torch's CPU
allocator does not cache: each step's activations and gradients are fresh allocations. With
glibc's ``malloc``, blocks of this size are ``mmap``-ed and every page is faulted in and
zeroed by the kernel on each use, which at 10^4-10^5 columns costs more than the matmuls
that fill them. Two remedies, both process-wide:

* :func:`use_fast_allocator` (colgraph's commands): run the command under **tcmalloc** (or
  jemalloc with its pages retained), which keeps freed memory for reuse. Preloading an
  allocator only works from the start of a process, so the command re-executes itself once
  with ``LD_PRELOAD`` set, as PyTorch's own CPU launcher
  (``python -m torch.backends.xeon.run_cpu --enable-tcmalloc``) does. Measured on the
  seed-style step at N = 65,536: 2.2-2.3x faster than glibc (BENCHMARKS.md).
* :func:`tune_allocator` (any process, e.g. a notebook): huge pages for large tensors and
  glibc ``mallopt`` thresholds; the most that can be done without preloading.

colgraph's entry points (``colgraph-train`` / ``colgraph-analyze``, ``python -m colgraph``,
``scripts/*.py``) call :func:`use_fast_allocator`, which also applies
:func:`tune_allocator`. ``import colgraph`` changes nothing, so code that embeds colgraph
keeps its process as it was; run such a script under the same allocator with::

    LD_PRELOAD=$(python -m colgraph allocator) python my_script.py

``COLGRAPH_ALLOCATOR`` chooses: ``auto`` (default: tcmalloc, else jemalloc, else glibc with
a one-line hint), ``tcmalloc``, ``jemalloc``, ``system`` (leave the allocator alone), or the
path of a shared library to preload.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

__all__ = ["tune_allocator", "use_fast_allocator", "find_allocator", "active_allocator"]

# glibc's <malloc.h> parameter numbers
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20  # serve allocations up to 32 MB from the heap
TRIM_THRESHOLD = 64 * 2**20  # keep up to 64 MB of freed heap in the process

# the libraries each allocator ships as (Debian / Ubuntu, conda-forge, Homebrew on Linux)
LIBRARIES = {"tcmalloc": ("tcmalloc_minimal", "tcmalloc"), "jemalloc": ("jemalloc",)}
CHOICES = ("auto", *LIBRARIES, "system")
# jemalloc returns freed pages to the OS after 10 s by default, so every step faults them in
# again (measured: no faster than glibc); retained, it is as fast as tcmalloc. These are the
# settings of PyTorch's CPU launcher.
JEMALLOC_CONF = ("oversize_threshold:1,background_thread:true,metadata_thp:auto,"
                 "dirty_decay_ms:-1,muzzy_decay_ms:-1")
INSTALL = ("`apt install libtcmalloc-minimal4` (Debian / Ubuntu), `dnf install "
           "gperftools-libs` (Fedora) or `conda install -c conda-forge gperftools`")
_REEXEC = "COLGRAPH_ALLOCATOR_REEXEC"  # set in the re-executed process: never loop


def tune_allocator() -> dict[str, bool]:
    """Tune this process's CPU allocator for training; returns what it applied.

    * ``huge_pages``: sets ``THP_MEM_ALLOC_ENABLE=1`` so torch backs large CPU tensors with
      transparent huge pages (fresh gradients otherwise page-fault at 3-4x the cost of the
      matmuls that fill them). torch reads this variable ONCE, at its first CPU allocation:
      call this before any tensor is created (first thing in a script, right after the
      imports) or it has no effect. An explicit setting in the environment
      (``THP_MEM_ALLOC_ENABLE=0``) wins; ``huge_pages`` reports whether the variable is on.
    * ``malloc``: glibc ``mallopt``: serve allocations up to 32 MB (glibc's largest default
      threshold) from the heap and keep up to 64 MB of freed heap, instead of handing
      tensors above a moving threshold to mmap and trimming freed memory eagerly (torch's
      CPU allocator does not cache, so every step's activations and gradients would fault
      in new pages). Measured 1.38x faster training steps at N = 1024 and 1.16x at
      N = 16384. (A 512 MB threshold was faster still at 16384, 1.4x, but fragmented the
      heap until a 10^5-column step ran out of memory; keeping 1 GB of freed heap raised
      peaks by that much.) Takes effect at once. glibc on Linux only, and not under a
      preloaded tcmalloc / jemalloc (:func:`use_fast_allocator`), which manage their own
      memory; ``COLGRAPH_MALLOC_TUNING=0`` leaves the allocator alone.

    Both settings are process-wide and last until the process exits; calling again is
    harmless. A preloaded allocator does far more than either (:func:`use_fast_allocator`).

    Example:
        >>> import colgraph
        >>> colgraph.tune_allocator()  # doctest: +SKIP
        {'huge_pages': True, 'malloc': True}
    """
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    return {"huge_pages": os.environ["THP_MEM_ALLOC_ENABLE"] == "1", "malloc": _tune_malloc()}


def _tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds (see :func:`tune_allocator`); whether it did."""
    if (os.environ.get("COLGRAPH_MALLOC_TUNING", "1") == "0" or sys.platform != "linux"
            or active_allocator() != "system"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    # glibc's own dynamic rule keeps trim = 2 x mmap threshold; setting the threshold
    # explicitly freezes trim at 128 kB (eager returns, fresh faults) unless set with it
    return (bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
            and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)))


def active_allocator() -> str:
    """``tcmalloc`` / ``jemalloc`` if that allocator is loaded into this process (preloaded,
    or linked in), else ``system``."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # not Linux
        return "system"
    for name in LIBRARIES:
        if f"lib{name}" in maps:
            return name
    return "system"


def find_allocator(choice: str = "auto") -> str | None:
    """The shared library to preload for ``choice`` (``auto`` | ``tcmalloc`` |
    ``jemalloc`` | a path), or ``None`` if it is not installed. Looks in this Python's
    environment (a conda or virtual environment's ``lib``) first, then where the dynamic
    linker looks."""
    if choice == "system":
        return None
    if choice not in LIBRARIES and choice != "auto":
        path = Path(choice)
        return str(path) if path.is_file() else None
    names = [n for key, group in LIBRARIES.items() if choice in ("auto", key) for n in group]
    prefixes = {Path(p) for p in (os.environ.get("CONDA_PREFIX"), sys.prefix,
                                  sys.base_prefix) if p}
    for name in names:
        for prefix in sorted(prefixes):
            found = sorted((prefix / "lib").glob(f"lib{name}.so*"))
            if found:
                return str(found[0])
        soname = ctypes.util.find_library(name)  # the dynamic linker's cache
        if soname:
            return soname
    return None


def use_fast_allocator() -> str:
    """Run this process under tcmalloc / jemalloc (see the module docstring); returns the
    allocator in use: ``tcmalloc``, ``jemalloc`` or ``system``.

    For colgraph's command-line entry points ONLY: when the allocator has to be preloaded,
    this replaces the process with a fresh run of the same command line (``os.execve``,
    same pid, same arguments and environment plus ``LD_PRELOAD``), so it must be the first
    thing the command does. A command run under the allocator already, on a system without
    one (a one-line hint on stderr) or with ``COLGRAPH_ALLOCATOR=system`` carries on in
    this process. Either way :func:`tune_allocator` is applied (huge pages; glibc's
    thresholds only where glibc allocates).

    Raises:
        SystemExit: ``COLGRAPH_ALLOCATOR`` names an allocator that is not installed or is
            not a known choice (before anything runs).
    """
    choice = os.environ.get("COLGRAPH_ALLOCATOR", "auto")
    if choice not in CHOICES and not Path(choice).is_file():
        raise SystemExit(f"COLGRAPH_ALLOCATOR={choice}: expected one of {', '.join(CHOICES)} "
                         f"or the path of a shared library; set one, or unset it.")
    current = active_allocator()
    theirs = "malloc" in os.environ.get("LD_PRELOAD", "")  # the user preloads one: theirs
    if (sys.platform != "linux" or choice == "system" or current != "system" or theirs
            or _REEXEC in os.environ):
        if _REEXEC in os.environ and current == "system" and choice != "system":
            print(f"colgraph: preloading {os.environ.get('LD_PRELOAD')} did not load an "
                  f"allocator; running with the system allocator", file=sys.stderr)
        os.environ.pop(_REEXEC, None)  # the command's own child processes may preload
        tune_allocator()
        return current
    library = find_allocator(choice)
    if library is None:
        if choice != "auto":  # a name, not installed
            raise SystemExit(f"COLGRAPH_ALLOCATOR={choice}: no such allocator is installed; "
                             f"install it ({INSTALL}), or unset it.")
        print(f"colgraph: no tcmalloc or jemalloc found; install tcmalloc for up to 2.3x "
              f"faster training steps at 10^4+ columns: {INSTALL}; COLGRAPH_ALLOCATOR=system "
              f"silences this.", file=sys.stderr)
        tune_allocator()
        return "system"
    env = dict(os.environ)
    env["LD_PRELOAD"] = ":".join(p for p in (library, env.get("LD_PRELOAD")) if p)
    env[_REEXEC] = "1"
    if "jemalloc" in Path(library).name:
        env.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    else:  # tcmalloc reports every allocation above 1 GB on stderr: routine at 10^5 columns
        env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(2**50))
    sys.stdout.flush()
    sys.stderr.flush()
    try:  # does not return
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    except OSError as e:  # e.g. the interpreter's path is not readable by this user
        print(f"colgraph: could not re-run the command under {library} ({e}); running with "
              f"the system allocator", file=sys.stderr)
        tune_allocator()
        return "system"
