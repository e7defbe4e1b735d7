"""Sheets larger than one process: column sharding (:mod:`colgraph.parallel.shard`)."""
from .shard import ColumnShard, HaloPlan, exchange, owned_state

__all__ = ["ColumnShard", "HaloPlan", "exchange", "owned_state"]
