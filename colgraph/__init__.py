"""colgraph: the Columnformer as a graph neural network.

A sheet of untied, spatially embedded columns applied recurrently, communicating by sparse
graph attention over the edges of a geometry.
"""
import ctypes
import os
import sys

# Huge pages for large CPU tensors. Untied layers make every weight gradient a fresh
# [N, out, in] tensor each step, and page faults on such allocations cost more than the
# matmuls that fill them (measured 3-4x). torch reads this once, at its first CPU
# allocation, so it takes effect when colgraph is imported before any tensor is made (as in
# `import torch; import colgraph`); an explicit setting (THP_MEM_ALLOC_ENABLE=0) wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def _tune_malloc() -> bool:
    """Keep freed CPU memory in the process instead of returning it to the kernel.

    Why: torch's CPU allocator does not cache, so every step's fresh activations and
    gradients fault in new, kernel-zeroed pages; glibc's defaults hand tensors above a
    moving threshold to mmap and trim freed heap memory eagerly. Serving allocations up to
    32 MB (glibc's largest default threshold) from the heap and keeping up to 64 MB of freed
    heap measured 1.38x faster training steps at N = 1024 and 1.16x at N = 16384 (seed-style
    config). A 512 MB threshold was faster still at 16384 (1.4x) but fragmented the heap
    until a 10^5-column step ran out of memory, and keeping 1 GB of freed heap raised
    peaks by that much. glibc on Linux only (``mallopt``);
    ``COLGRAPH_MALLOC_TUNING=0`` leaves the allocator alone. Returns whether it applied.
    """
    if os.environ.get("COLGRAPH_MALLOC_TUNING", "1") == "0" or sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    # glibc's own dynamic rule keeps trim = 2 x mmap threshold; setting the threshold
    # explicitly freezes trim at 128 kB (eager returns, fresh faults) unless set with it
    return (bool(mallopt(m_mmap_threshold, 32 * 2**20))
            and bool(mallopt(m_trim_threshold, 64 * 2**20)))


MALLOC_TUNED = _tune_malloc()

from .geometry import Geometry  # noqa: E402  (after the allocator settings above)
from .model import Columnformer, ColumnformerConfig, ColumnformerOutput, Sheet  # noqa: E402

__version__ = "0.1.0"


def load_model(path, with_data: bool = True, data_path=None):
    """A trained model from a run directory or checkpoint: ``(model, geometry, config,
    data)`` (see :func:`colgraph.restore.load_model`)."""
    from .restore import load_model as load

    return load(path, with_data=with_data, data_path=data_path)


def export_model(path, out):
    """The weights-only part of a checkpoint, written to ``out`` (see
    :func:`colgraph.restore.export_model`)."""
    from .restore import export_model as export

    return export(path, out)


__all__ = ["Columnformer", "ColumnformerConfig", "ColumnformerOutput", "Sheet", "Geometry",
           "load_model", "export_model", "__version__"]
