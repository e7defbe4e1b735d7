"""Checks shared by the config dataclasses: field types and value ranges, with messages
that name the config key, what it must be, what arrived and (where it helps) the fix.

Hydra's structured configs already type-check values composed from YAML and the command
line; these checks also cover the Python API (``ColumnformerConfig(channels="32")``) and
the value ranges no type can express (``optim.grad_clip=-1``).

A group's plain dict becomes its dataclass with :func:`from_mapping` (unknown keys refused,
every problem of the group collected in one :class:`ConfigProblems`); a group of registered
options (``geometry``, ``geometry.wiring``) has a base class deriving from :class:`Option`,
which picks the option a dict names and refuses the settings that option does not read.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import types
import typing
import warnings
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping

from .registry import Registry

__all__ = ["check_types", "require", "positive", "non_negative", "fraction", "one_of",
           "from_mapping", "ConfigProblems", "problems_of", "Checks", "unread_settings",
           "stored_config", "Option"]


def _allowed(tp: Any) -> tuple[tuple[type, ...], bool] | None:
    """(accepted types, optional) for a simple annotation; None when not checked here."""
    optional = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) != 1:
            return None
        tp = args[0]
    if tp in (int, float, bool, str):
        return {int: (int,), float: (int, float), bool: (bool,), str: (str,)}[tp], optional
    return None


def check_types(obj: Any, group: str) -> None:
    """Refuse a field whose value has the wrong type (``int`` fields take ints, not
    ``2.5`` or ``"32"``; ``bool`` is not an int here); every such field at once."""
    hints = typing.get_type_hints(type(obj))
    with Checks() as check:
        for f in dataclasses.fields(obj):
            check(_check_type, obj, f, hints.get(f.name), group)


def _check_type(obj: Any, f: dataclasses.Field, hint: Any, group: str) -> None:
    rule = _allowed(hint)
    if rule is None:
        return
    accepted, optional = rule
    value = getattr(obj, f.name)
    if value is None and optional:
        return
    if isinstance(value, bool) and bool not in accepted or not isinstance(value, accepted):
        names = " or ".join(t.__name__ for t in accepted) + (" or None" if optional else "")
        raise TypeError(f"{group}.{f.name} must be {names} (got {value!r} of type "
                        f"{type(value).__name__}).")


def require(ok: bool, key: str, value: Any, expected: str, fix: str = "") -> None:
    """Raise ``ValueError("<key> must be <expected> (got <value>). <fix>")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{key} must be {expected} (got {value!r}).{' ' + fix if fix else ''}")


def positive(key: str, value: Any, fix: str = "") -> None:
    require(value is not None and math.isfinite(value) and value > 0, key, value,
            "a finite number > 0", fix)


def non_negative(key: str, value: Any, fix: str = "") -> None:
    require(value is not None and math.isfinite(value) and value >= 0, key, value,
            "a finite number >= 0", fix)


def fraction(key: str, value: Any, low_open: bool = False, high_open: bool = True) -> None:
    lo = value > 0 if low_open else value >= 0
    hi = value < 1 if high_open else value <= 1
    interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
    require(value is not None and lo and hi, key, value, f"in {interval}")


def one_of(key: str, value: Any, choices: Iterable[str]) -> None:
    choices = list(choices)
    require(value in choices, key, value, f"one of {', '.join(map(str, choices))}")


def from_mapping(cls: type, data: Mapping[str, Any], group: str, note: str = "") -> Any:
    """``cls(**data)`` for a config dataclass ``cls`` read from the plain dict of ``group``.

    Refuses keys ``cls`` has no field for (a typo, or ``+group.key=...`` on the command
    line) with the valid choices (``note`` is appended to them); converts nested dicts of
    dataclass fields the same way, or by the field class's ``from_dict(data, group)`` when it
    has one (a registry option such as ``geometry.wiring``). ``cls``'s own ``__post_init__``
    checks the values.

    Example:
        >>> from colgraph.config import OptimConfig
        >>> from_mapping(OptimConfig, {"lr": 0.01}, "optim").lr
        0.01
        >>> from_mapping(OptimConfig, {"learning_rate": 0.1}, "optim")
        Traceback (most recent call last):
        ...
        colgraph.validation.ConfigProblems: Unknown key(s) optim.learning_rate. Choices: betas, fused, grad_clip, lr, min_lr_ratio, warmup_epochs, weight_decay.
    """
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = sorted(f.name for f in fields)
    unknown = sorted(set(data) - set(names))
    problems, errors = [], []
    if unknown:
        problems.append(f"Unknown key(s) {', '.join(f'{group}.{k}' for k in unknown)}. "
                        f"Choices: {', '.join(names)}{note}.")
    data = {k: v for k, v in data.items() if k not in unknown}
    for f in fields:  # nested groups (geometry.wiring, data.augment)
        if not isinstance(data.get(f.name), Mapping) or \
                f.default_factory is dataclasses.MISSING:
            continue
        sub = f.default_factory()
        convert = type(sub).from_dict if hasattr(sub, "from_dict") else \
            (lambda d, g, c=type(sub): from_mapping(c, d, g))
        try:
            data[f.name] = convert(data[f.name], f"{group}.{f.name}")
        except (TypeError, ValueError) as e:  # go on with what was understood
            problems, errors = problems + problems_of(e), errors + [e]
            if getattr(e, "partial", None) is None:
                del data[f.name]
            else:
                data[f.name] = e.partial
    try:
        obj = cls(**data)
    except (TypeError, ValueError) as e:
        problems, errors, obj = problems + problems_of(e), errors + [e], None
    if len(problems) == 1 and len(errors) == 1 and getattr(errors[0], "partial", None) is None:
        raise errors[0]
    if problems:
        raise ConfigProblems(problems, obj)
    return obj


class ConfigProblems(ValueError):
    """Several problems of one config group, found at once (``validate_config`` lists them
    all). ``problems``: their messages; ``partial``: the config built without the refused
    keys (``None`` when a value was wrong), so that an enclosing group can check the rest."""

    def __init__(self, problems: list[str], partial: Any = None) -> None:
        super().__init__("\n  - ".join(problems))
        self.problems, self.partial = list(problems), partial


def problems_of(error: Exception) -> list[str]:
    """The problem messages an error carries (one, or a :class:`ConfigProblems`' list)."""
    return list(getattr(error, "problems", [str(error)]))


class Checks:
    """Collects every problem that one config group's checks find and raises them together
    when its ``with`` block ends: the one error itself, or a :class:`ConfigProblems` listing
    them all (so ``validate_config`` reports every problem of every group at once).

    ``check(fn, *args)`` runs a check that raises (``require``, ``fraction``, ...) and keeps
    its error; ``check.refuse(bad, message)`` adds ``message`` when ``bad``;
    ``check.unread(bad, message)`` adds a setting that cannot take effect (a warning
    instead inside :func:`stored_config`).

    Example:
        >>> with Checks() as check:  # doctest: +ELLIPSIS
        ...     check(require, False, "optim.lr", -1, "> 0")
        ...     check.refuse(True, "optim.grad_clip must be >= 0 (got -1).")
        Traceback (most recent call last):
        ...
        colgraph.validation.ConfigProblems: optim.lr must be > 0 (got -1).
          - optim.grad_clip must be >= 0 (got -1).
    """

    def __init__(self) -> None:
        self.errors: list[Exception] = []

    def __enter__(self) -> "Checks":
        return self

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except (TypeError, ValueError) as e:
            self.errors.append(e)

    def refuse(self, bad: bool, message: str) -> None:
        if bad:
            self.errors.append(ValueError(message))

    def unread(self, bad: bool, message: str) -> None:
        if not bad:
            return
        where = _STORED.get()
        if where is None:
            self.errors.append(ValueError(message))
        elif where:  # a config written before this check existed: it still loads
            warnings.warn(f"{where}: {message}", UserWarning, stacklevel=4)

    def __exit__(self, kind: Any, *exc: Any) -> None:
        if kind is not None or not self.errors:
            return
        if len(self.errors) == 1:
            raise self.errors[0]
        raise ConfigProblems([p for e in self.errors for p in problems_of(e)])


_STORED: contextvars.ContextVar[str | None] = contextvars.ContextVar("stored", default=None)


@contextlib.contextmanager
def stored_config(where: str = "The checkpoint's config") -> Iterator[None]:
    """Read a config written earlier (a checkpoint's): inside this block a setting that
    cannot take effect (:meth:`Checks.unread`) is a warning naming ``where``, not an error,
    so that runs saved before a check existed still load (``where=""``: not even a warning,
    for a config already reported). Value errors are still raised."""
    token = _STORED.set(where)
    try:
        yield
    finally:
        _STORED.reset(token)


def unread_settings(check: Checks, obj: Any, group: str, selector: str, chosen: str,
                    settings: Mapping[str, Iterable[str]], fix: str = "") -> None:
    """Refuse (through ``check``) every field of the dataclass ``obj`` that some option
    reads (``settings``: option -> the fields it reads), the ``chosen`` one not, and that
    is moved from its default: it cannot take effect. An option missing from ``settings``
    (registered by a user) may read anything: nothing is refused."""
    if chosen not in settings:
        return
    own = list(settings[chosen])
    for f in dataclasses.fields(obj):
        readers = [name for name, keys in settings.items() if f.name in keys]
        if not readers or f.name in own:
            continue
        value = getattr(obj, f.name)
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        if value == default or value is default:
            continue
        check.unread(True, f"{group}.{f.name}={value!r} does not apply to {selector}={chosen} "
                           f"(its settings: {', '.join(own) or 'none'}); only "
                           f"{selector.rsplit('.', 1)[-1]}={' | '.join(readers)} read it. "
                           f"{fix or 'Remove the override or choose one of those.'}")


class Option:
    """Base of the options of one registry: a dataclass whose fields ARE the option's
    settings, picked in a config by one key (``geometry=grid``, ``geometry.wiring.rule=knn``).

    A concept's base class (e.g. :class:`colgraph.geometry.GeometryConfig`) subclasses
    ``Option`` and sets the class attributes below; :meth:`register` adds an option to its
    registry. A config dict then becomes an option with :meth:`from_dict`, which refuses a
    key the chosen option does not read like any typo, and :meth:`schema` gives hydra one
    permissive schema for the whole group (every option's settings, each optional).

    Attributes:
        registry: the options by name (``{"grid": GridConfig, ...}``), a
            :class:`colgraph.registry.Registry` (its ``kind`` names the concept in messages,
            its ``lookup`` refuses an unknown name listing the choices).
        key: the config key that names the option (``"name"``, ``"rule"``); a registered
            option carries its own name in this attribute (``GridConfig.name == "grid"``).
        group: where the options sit in the config (``"geometry"``, ``"geometry.wiring"``).
        picked_by_group: the option is a hydra group choice (``geometry=grid``), not a key.
        legacy: the defaults of the one flat config every option of the group once shared;
            a complete flat dict of that shape (a checkpoint's config from before the
            registry) loads with the keys its option does not read dropped where they still
            hold these defaults.
    """

    registry: ClassVar[Registry]
    key: ClassVar[str]
    group: ClassVar[str]
    picked_by_group: ClassVar[bool] = False
    legacy: ClassVar[dict[str, Any]] = {}

    @classmethod
    def register(cls, name: str) -> Callable[[type], type]:
        """Decorator: add a dataclass subclass of ``cls`` to the registry as ``name``
        (registering a name again replaces the earlier option, with a warning)."""

        def add(option: type) -> type:
            if not (isinstance(option, type) and issubclass(option, cls)
                    and dataclasses.is_dataclass(option)):
                raise TypeError(f"Only a @dataclass subclass of {cls.__name__} can be "
                                f"registered as a {cls.registry.kind} (got {option!r}).")
            cls.registry.register(name)(option)
            setattr(option, cls.key, name)
            return option

        return add

    @classmethod
    def settings(cls) -> list[str]:
        """The option's config keys: its own fields first, then the shared ones."""
        shared = [f.name for f in dataclasses.fields(cls._base())]
        own = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in shared]
        return own + shared

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], group: str | None = None) -> Option:
        """The option ``data[key]`` names (by default ``cls``'s own, when ``cls`` is a
        registered option), built from the rest of ``data``.

        ``None`` values mean "the option's default" (the permissive :meth:`schema` fills
        every setting of every option with ``None``). A key of another option is refused
        naming the options that read it; any other unknown key like a typo. ``group``: the
        config path for messages (default :attr:`group`).
        """
        group = group or cls.group
        data = {k: v for k, v in data.items() if v is not None}
        name = data.pop(cls.key, None) or getattr(cls, cls.key, None)
        select = cls._selector(group)
        require(name in cls.registry, select, name, "one of " + ", ".join(cls.registry),
                f"Pick one with {select}=<name>.")
        option = cls.registry[name]
        own = option.settings()
        if cls.legacy.keys() <= data.keys():  # a complete flat dict from before the registry
            data = {k: v for k, v in data.items()
                    if k in own or k not in cls.legacy or cls.legacy[k] != v}
        readers = {k: [n for n, o in cls.registry.items() if k in o.settings()]
                   for k in data if k not in own}
        foreign = [k for k, names in readers.items() if names]
        problems = []
        if foreign:
            keys = ", ".join(f"{group}.{k}" for k in foreign)
            values = ", ".join(f"{group}.{k}={data[k]!r}" for k in foreign)
            where = "; ".join(f"{k} is read by {select}={' / '.join(readers[k])}"
                              for k in foreign)
            problems.append(f"Unknown key(s) {keys} for {select}={name}: {values} "
                            f"{'does' if len(foreign) == 1 else 'do'} not apply to "
                            f"{select}={name} (its settings: {', '.join(own) or 'none'}). "
                            f"{where}: drop the key(s) or choose that option.")
            data = {k: v for k, v in data.items() if k not in foreign}
        try:
            obj = from_mapping(option, data, group, f" (the settings of {select}={name})")
        except (TypeError, ValueError) as e:
            if not problems:
                raise
            raise ConfigProblems(problems + problems_of(e), getattr(e, "partial", None)) \
                from None
        if problems:
            raise ConfigProblems(problems, obj)
        return obj

    @classmethod
    def schema(cls) -> type:
        """A dataclass with every registered option's settings, each optional (``None``:
        the option's default), plus :attr:`key`: the schema hydra composes the group with,
        so that a key no option has fails at compose time and :meth:`from_dict` refuses a
        key the chosen option does not read. Built from the registry when called, so
        options registered before the config is composed are included."""
        types_: dict[str, Any] = {}
        nested: dict[str, type] = {}
        for option in cls.registry.values():
            hints = typing.get_type_hints(option)
            for f in dataclasses.fields(option):
                if not f.init:
                    continue
                if f.default_factory is not dataclasses.MISSING and \
                        isinstance(f.default_factory(), Option):
                    nested[f.name] = type(f.default_factory())._base().schema()
                    continue
                tp = typing.Optional[hints[f.name]]
                types_[f.name] = tp if types_.get(f.name, tp) == tp else Any
        spec = [(cls.key, typing.Optional[str], None)]
        spec += [(k, tp, None) for k, tp in types_.items()]
        spec += [(k, s, dataclasses.field(default_factory=s)) for k, s in nested.items()]
        schema = dataclasses.make_dataclass(f"{cls._base().__name__}Schema", spec)
        schema.__module__ = cls._base().__module__
        return schema

    @classmethod
    def _base(cls) -> type:
        return next(c for c in cls.__mro__ if "registry" in vars(c))

    @classmethod
    def _selector(cls, group: str) -> str:
        return group if cls.picked_by_group else f"{group}.{cls.key}"
