"""Checks shared by the config dataclasses: field types and value ranges, with messages
that name the config key, what it must be, what arrived and (where it helps) the fix.

Hydra's structured configs already type-check values composed from YAML and the command
line; these checks also cover the Python API (``ColumnformerConfig(channels="32")``) and
the value ranges no type can express (``optim.grad_clip=-1``).
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Iterable

__all__ = ["check_types", "require", "positive", "non_negative", "fraction", "one_of"]


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
    ``2.5`` or ``"32"``; ``bool`` is not an int here)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        rule = _allowed(hints.get(f.name))
        if rule is None:
            continue
        accepted, optional = rule
        value = getattr(obj, f.name)
        if value is None and optional:
            continue
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
