"""colgraph: the Columnformer as a graph neural network.

A sheet of untied, spatially embedded columns applied recurrently, communicating by sparse
graph attention over the edges of a geometry.

Importing colgraph changes nothing in the host process and imports nothing heavy: the names
below load on first use (PEP 562). That lets an entry point set up its process before
torch loads (:func:`setup_process`: the OpenMP threads' wait, :func:`tune_threads`, and the
CPU allocator, :func:`use_fast_allocator`, which may re-execute the command under tcmalloc)
or at least before its first tensor (:func:`tune_allocator`); colgraph's command lines do.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from .allocator import tune_allocator, use_fast_allocator
from .process import setup_process, tune_threads

__version__ = "0.1.0"

# public name -> the module that defines it (imported on first access)
_LAZY = {"Geometry": "geometry", "Columnformer": "model", "ColumnformerConfig": "model",
         "ColumnformerOutput": "model", "Block": "model", "load_model": "restore",
         "export_model": "restore"}

if TYPE_CHECKING:
    from .geometry import Geometry
    from .model import Columnformer, ColumnformerConfig, ColumnformerOutput, Block
    from .restore import export_model, load_model


def __getattr__(name: str) -> Any:
    """``colgraph.<name>`` for the lazily imported names and subpackages."""
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}"):
        value = importlib.import_module(f".{name}", __name__)  # e.g. colgraph.geometry
    else:
        raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["Columnformer", "ColumnformerConfig", "ColumnformerOutput", "Block", "Geometry",
           "load_model", "export_model", "tune_allocator", "use_fast_allocator",
           "setup_process", "tune_threads", "__version__"]
