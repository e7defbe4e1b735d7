"""Learned wiring: prune and grow a sheet's edges during training, move its columns
(:mod:`.migrate`), and grow the sheet.

Pure operators on tensors (:mod:`.prune`, :mod:`.grow`: registries of prune criteria and
grow rules, :func:`register_prune` / :func:`register_grow`), a schedule that applies them with
ONE edit of the model's :class:`~colgraph.nn.SheetEdges` (:mod:`.schedule`), and new
columns cloned from their nearest neighbours (:mod:`.scale`).

Example:
    >>> from colgraph import Columnformer
    >>> from colgraph.geometry import grid, uniform
    >>> from colgraph.plasticity import Plasticity, PlasticityConfig
    >>> model = Columnformer(grid(8, wiring=uniform(k=8)), channels=8, steps=8)
    >>> plasticity = Plasticity(model, PlasticityConfig.preset("set", grow="geometric",
    ...                         every=10), total_steps=100)
    >>> plasticity.maybe_update(step=10)["added"] > 0
    True
"""
from .figures import plot_history, read_history
from .grow import (GROW_RULES, GrowInputs, gradient_scores, grow_edges, register_grow,
                   sample_candidates)
from .homophily import homophily_scores, matching_index
from .prune import (PRUNE_CRITERIA, PruneInputs, prune_scores, rank_within_target,
                    reachability_edges, register_prune, select_prune)
from .registry import Rule, RuleRegistry
from .migrate import METHODS, MigrateConfig, Migration
from .scale import add_columns, refine_grid
from .schedule import PRESET_FIELDS, PRESETS, Plasticity, PlasticityConfig

__all__ = ["Plasticity", "PlasticityConfig", "Migration", "MigrateConfig", "METHODS", "PRESETS", "PRESET_FIELDS", "PRUNE_CRITERIA",
           "GROW_RULES", "register_prune", "register_grow", "PruneInputs", "GrowInputs", "Rule",
           "RuleRegistry", "prune_scores", "select_prune", "reachability_edges",
           "rank_within_target", "grow_edges", "sample_candidates", "gradient_scores",
           "add_columns", "refine_grid", "plot_history", "read_history",
           "matching_index", "homophily_scores"]
