"""The registries of plasticity rules: prune criteria and grow rules.

A rule is a plain function registered under a name with a decorator; its keyword-only
parameters ARE its settings (``p`` for ``prune=wiring``, ``lam`` and ``pool`` for the gradient
grow rules): :class:`~colgraph.plasticity.Plasticity` passes each one the value of the
:class:`~colgraph.plasticity.PlasticityConfig` field of that name, and the config refuses a
rule-specific field that the chosen rule does not read. Lookups accept a registered name or a
callable (timm's ``get_act_layer`` style), so a new rule is a function away.

Example:
    >>> import torch
    >>> from colgraph.plasticity import PRUNE_CRITERIA, register_prune
    >>> @register_prune("newest_last")
    ... def newest_last(inputs, *, p: float = 1.0):
    ...     return torch.arange(inputs.edge_index.size(1), dtype=torch.float)
    >>> PRUNE_CRITERIA.lookup("newest_last").settings
    ('p',)
    >>> del PRUNE_CRITERIA["newest_last"]
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..registry import Registry

__all__ = ["Rule", "RuleRegistry"]


@dataclass(frozen=True)
class Rule:
    """A registered rule: ``fn`` under ``name``.

    Attributes:
        name: the name configs use (``plasticity.prune=<name>``).
        fn: the function; its keyword-only parameters are its settings.
        kind: what the registry holds (``"prune criterion"``, ``"grow rule"``), for errors.
        records: the rule reads attention records of a recorded forward + backward pass
            (the gradient grow rules), so the schedule records the step before an update.
    """

    name: str
    fn: Callable[..., Any]
    kind: str
    records: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "__wrapped__", self.fn)  # as functools.wraps: inspect.unwrap

    @property
    def settings(self) -> tuple[str, ...]:
        """The rule's settings: the names of ``fn``'s keyword-only parameters."""
        return tuple(p.name for p in inspect.signature(self.fn).parameters.values()
                     if p.kind is inspect.Parameter.KEYWORD_ONLY)

    def __call__(self, *args: Any, **settings: Any) -> Any:
        unknown = sorted(set(settings) - set(self.settings))
        if unknown:
            raise ValueError(f"The {self.kind} '{self.name}' has no setting(s) "
                             f"{', '.join(unknown)} (its settings: "
                             f"{', '.join(self.settings) or 'none'}). Drop them.")
        return self.fn(*args, **settings)


class RuleRegistry(Registry):
    """Name -> :class:`Rule`: a :class:`colgraph.registry.Registry` whose :meth:`register`
    wraps the function in a :class:`Rule` and whose :meth:`lookup` always gives a
    :class:`Rule`; iterating gives the names.

    Args:
        kind: what it holds, for messages (``"grow rule"`` gives "Unknown grow rule 'x'.
            Choices: ...").
    """

    def register(self, name: str, *, records: bool = False
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register the function as ``name`` (returned unchanged); ``records``:
        see :class:`Rule`. Registering a name again replaces the rule, with a warning."""
        add = super().register(name)

        def add_rule(fn: Callable[..., Any]) -> Callable[..., Any]:
            add(Rule(name, fn, self.kind, records))
            return fn

        return add_rule

    def lookup(self, rule: str | Callable[..., Any]) -> Rule:
        """The :class:`Rule` for a registered name, a :class:`Rule`, or any callable (a
        registered function gives its entry; another is wrapped under its ``__name__``)."""
        if isinstance(rule, Rule):
            return rule
        if callable(rule):
            known = [r for r in self.values() if r.fn is rule]
            return known[0] if known else Rule(getattr(rule, "__name__", repr(rule)), rule,
                                               self.kind)
        return super().lookup(rule)

    def settings(self) -> set[str]:
        """Every setting some rule of this registry reads."""
        return {s for r in self.values() for s in r.settings}
