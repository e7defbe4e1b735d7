"""One small registry for every concept that is picked by name: a dict of name -> entry.

colgraph's pluggable concepts each keep one :class:`Registry`: tasks
(:data:`colgraph.tasks.TASKS`), data sets (:data:`colgraph.data.DATASETS`), attention kernels
(:data:`colgraph.nn.KERNELS`), geometries and wiring rules (:data:`colgraph.geometry.GEOMETRIES`,
:data:`colgraph.geometry.WIRINGS`), prune criteria and grow rules
(:data:`colgraph.plasticity.PRUNE_CRITERIA`, :data:`colgraph.plasticity.GROW_RULES`). What an
entry is and what it must do (a kernel's signature, a geometry's dataclass) is the concept's
own contract, documented where the concept lives; the registry only holds the names.

The contract, the same for every concept:

* ``registry.register(name)`` is a decorator that adds its argument (any callable: a
  function, a class) under ``name`` and returns it unchanged. Registering a name again
  **replaces** the earlier entry, with a ``UserWarning`` naming both.
* ``registry.register(name, settings=("key", ...))`` also declares the config keys of the
  concept's group that the entry reads (``registry.settings_of(name)`` gives them back). A
  concept whose config checks settings (tasks: ``task.*``, data sets: ``data.*``) refuses
  a key that other entries read, moved from its default, when the chosen entry does not
  declare it: it cannot take effect. An entry registered without ``settings`` declares
  nothing (``settings_of`` is ``None``) and may read any key: none is refused for it.
* ``registry.lookup(key)`` gives the entry registered as ``key``; a callable passes through
  as it is (timm's ``get_act_layer`` style: an entry that was never registered still works);
  an unknown name is a ``ValueError`` listing the choices: "Unknown <kind> '<name>'. Choices:
  a, b, c. <hint>".
* Otherwise it is a plain ``dict``: ``name in registry``, ``list(registry)`` (the names, in
  registration order), ``registry[name]``, ``del registry[name]`` (unregister).

No plugin framework: a registry is filled by the imports of the module that defines it, and
by whatever a user registers before building a model or composing a config.

Example:
    >>> from colgraph.registry import Registry
    >>> ACTIVATIONS = Registry("activation", hint="Add one with @ACTIVATIONS.register(...).")
    >>> @ACTIVATIONS.register("square")
    ... def square(x):
    ...     return x * x
    >>> ACTIVATIONS.lookup("square")(3)
    9
    >>> ACTIVATIONS.lookup(abs)(-2)  # a callable passes through
    2
    >>> ACTIVATIONS.lookup("cube")
    Traceback (most recent call last):
    ...
    ValueError: Unknown activation 'cube'. Choices: square. Add one with @ACTIVATIONS.register(...).
    >>> "square" in ACTIVATIONS, list(ACTIVATIONS)
    (True, ['square'])
    >>> del ACTIVATIONS["square"]
    >>> LOSSES = Registry("loss")
    >>> _ = LOSSES.register("huber", settings=("delta",))(abs)
    >>> LOSSES.settings_of("huber"), LOSSES.settings_of("nope")
    (('delta',), None)
"""
from __future__ import annotations

import inspect
import os
import sys
import warnings
from typing import Any, Callable, Iterable, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(dict):
    """Name -> entry for one concept (see the module docstring for the contract).

    Args:
        kind: what an entry is, for messages (``"attention kernel"`` gives "Unknown attention
            kernel 'x'. Choices: ...").
        hint: the last sentence of the unknown-name error: how to pick or add an entry
            (``"Pick one with task=<name>."``). ``{name}`` in it is replaced by the name that
            was asked for.
    """

    def __init__(self, kind: str, hint: str = "") -> None:
        super().__init__()
        self.kind, self.hint = kind, hint
        self._settings: dict[str, tuple[Any, tuple[str, ...]]] = {}  # name -> (entry, keys)

    def register(self, name: str, settings: Iterable[str] | None = None
                 ) -> Callable[[T], T]:
        """Decorator: add the decorated callable as ``name`` and return it unchanged.
        Registering ``name`` again replaces the earlier entry, with a warning.

        Args:
            name: the name a config picks the entry by.
            settings: the config keys (of the concept's group) the entry reads, e.g.
                ``("mask_ratio", "patch_size")`` for a task; ``None``: not declared, the
                entry may read any (see the module docstring).
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"A {self.kind} is registered under a non-empty name string (got "
                            f"{name!r}): use @register('my_name').")
        if settings is not None:
            given = settings
            try:
                settings = None if isinstance(given, str) else tuple(given)
            except TypeError:  # not iterable
                settings = None
            if settings is None or not all(isinstance(k, str) and k for k in settings):
                raise TypeError(f"register('{name}', settings=...) takes the names of the "
                                f"config keys the {self.kind} reads, a tuple of strings (got "
                                f"{given!r}): e.g. settings=('mask_ratio',).")

        def add(entry: T) -> T:
            if not callable(entry):
                raise TypeError(f"register('{name}') takes a callable {self.kind} (got "
                                f"{type(entry).__name__}).")
            if name in self:
                warnings.warn(f"Replacing the {self.kind} registered as '{name}' "
                              f"({_describe(self[name])}) with {_describe(entry)}.",
                              stacklevel=_outside_colgraph())
            self[name] = entry
            if settings is None:
                self._settings.pop(name, None)
            else:
                self._settings[name] = (entry, settings)
            return entry

        return add

    def settings_of(self, name: str) -> tuple[str, ...] | None:
        """The config keys the entry ``name`` declared it reads (``register(name,
        settings=...)``), or ``None`` when it declared none (or is not registered)."""
        entry, keys = self._settings.get(name, (None, None))
        return keys if name in self and self[name] is entry else None

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        self._settings.pop(name, None)

    def lookup(self, key: str | Callable[..., Any]) -> Any:
        """The entry registered as ``key``; a callable ``key`` is returned as it is."""
        if isinstance(key, str):
            if key not in self:
                hint = " " + self.hint.format(name=key) if self.hint else ""
                raise ValueError(f"Unknown {self.kind} '{key}'. Choices: "
                                 f"{', '.join(self)}.{hint}")
            return self[key]
        if callable(key):
            return key
        article = "an" if self.kind[:1] in "aeiou" else "a"
        raise TypeError(f"Expected {article} {self.kind} name or a callable (got "
                        f"{type(key).__name__}). Choices: {', '.join(self)}.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind!r}: {', '.join(self)})"


def _describe(entry: Any) -> str:
    """``module.qualname`` of a function or class (or of what a wrapper wraps), else its
    repr."""
    entry = inspect.unwrap(entry)
    if hasattr(entry, "__qualname__"):
        return f"{entry.__module__}.{entry.__qualname__}"
    return repr(entry)


def _outside_colgraph() -> int:
    """The ``stacklevel`` of the first caller outside the colgraph package (the line that
    registered), so a warning points at user code whichever register_* was called."""
    root = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(root):
        frame, level = frame.f_back, level + 1
    return level
