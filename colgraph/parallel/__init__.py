"""Sheets larger than one process: column parallelism.

* :func:`partition` -> :class:`Partition`: which columns each of ``P`` ranks owns (a
  contiguous range after renumbering), balanced in work with a small edge cut, by a Hilbert
  space-filling curve (``"sfc"``, no dependency) or METIS (``"metis"``, ``pip install
  'colgraph[metis]'``); :meth:`Partition.stats` measures the edge cut and the halo each part
  receives per step, :meth:`Partition.renumber` gives the renumbered geometry
  (:mod:`colgraph.parallel.partition`, the curve in :mod:`colgraph.parallel.sfc`).
* Column sharding (:mod:`colgraph.parallel.shard`): :class:`ColumnShard` (this process's
  columns, reductions over the group), :class:`HaloPlan` and :func:`exchange` (the halo each
  step); a sharded sheet's state dicts (:mod:`colgraph.parallel.state`).
"""
from .partition import (BALANCES, METHODS, Partition, PartitionStats, column_weight,
                        partition)
from .sfc import hilbert_index, sfc_order
from .shard import ColumnShard, HaloPlan, exchange
from .state import owned_optimizer_state, owned_state

__all__ = ["Partition", "PartitionStats", "partition", "column_weight", "METHODS", "BALANCES",
           "sfc_order", "hilbert_index", "ColumnShard", "HaloPlan", "exchange", "owned_state",
           "owned_optimizer_state"]
