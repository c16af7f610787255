"""Configuration checks at construction: every field against its type, then its allowed range.

Every configuration (and alert rule) is a frozen dataclass whose ``__post_init__`` calls
:func:`check_config`, so a mistake raises ``ValueError`` when the object is built, naming the field,
the value and what is allowed, never later inside training::

    def __post_init__(self) -> None:
        check_config(self, every=at_least(1), budget_s=above(0))

Types come from the annotations (``int``, ``float``, ``bool``, ``str``, ``Literal``, ``X | None``,
``tuple[T, ...]``, ``Mapping[K, V]``, nested configs). A float never accepts NaN. Sequence fields are
stored as tuples. A range rule is skipped for ``None`` (where the type allows it).
"""

from __future__ import annotations

import collections.abc as abc
import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union


@dataclass(frozen=True)
class Rule:
    """An allowed range: ``allowed`` says it in words, ``test`` checks a value (never None)."""

    allowed: str
    test: Callable[[Any], bool]


def at_least(low: float) -> Rule:
    return Rule(f">= {low}", lambda v: v >= low)


def above(low: float) -> Rule:
    return Rule(f"> {low}", lambda v: v > low)


def between(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Rule:
    """``low <= v <= high``; ``low_open`` / ``high_open`` exclude the bound."""
    text = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    return Rule(text, lambda v: (v > low if low_open else v >= low) and (v < high if high_open else v <= high))


def non_empty() -> Rule:
    return Rule("not empty", lambda v: len(v) > 0)


def each(rule: Rule) -> Rule:
    """Every element of a sequence (or every value of a mapping) satisfies ``rule``."""
    def test(value: Any) -> bool:
        items = value.values() if isinstance(value, abc.Mapping) else value
        return all(rule.test(v) for v in items)

    return Rule(f"every element {rule.allowed}", test)


def check_config(config: Any, **rules: Rule) -> None:
    """Raise ``ValueError`` for the first field of ``config`` whose value has the wrong type or is out of
    its range in ``rules``; sequence fields are stored as tuples (see the module docstring)."""
    cls = type(config)
    hints = _hints(cls)
    unknown = set(rules) - set(hints)
    if unknown:
        raise TypeError(f"{cls.__name__}: rules for unknown fields {sorted(unknown)}")
    for f in dataclasses.fields(config):
        value, hint = getattr(config, f.name), hints[f.name]
        if not _matches(value, hint):
            raise ValueError(f"{cls.__name__}.{f.name}={value!r} is not allowed: expected {_describe(hint)}")
        if isinstance(value, list) and _is_tuple(hint):
            object.__setattr__(config, f.name, tuple(value))
        rule = rules.get(f.name)
        if rule is not None and value is not None and not rule.test(value):
            raise ValueError(f"{cls.__name__}.{f.name}={value!r} is out of range: allowed {rule.allowed}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _union_args(hint: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(hint)
    return typing.get_args(hint) if origin is Union or origin is types.UnionType else None


def _is_tuple(hint: Any) -> bool:
    args = _union_args(hint)
    return any(_is_tuple(a) for a in args) if args else typing.get_origin(hint) is tuple


def _matches(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    args = _union_args(hint)
    if args is not None:
        return any(_matches(value, a) for a in args)
    origin, params = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return any(type(value) is type(p) and value == p for p in params)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, list, abc.Sequence):
        if isinstance(value, str) or not isinstance(value, (tuple, list)):
            return False
        if origin is tuple and params and params[-1] is not Ellipsis:
            return len(value) == len(params) and all(_matches(v, p) for v, p in zip(value, params))
        return not params or all(_matches(v, params[0]) for v in value)
    if origin in (dict, abc.Mapping):
        if not isinstance(value, abc.Mapping):
            return False
        return not params or all(_matches(k, params[0]) and _matches(v, params[1]) for k, v in value.items())
    if origin is abc.Callable:
        return callable(value)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _describe(hint: Any) -> str:
    args = _union_args(hint)
    if args is not None:
        return " or ".join(_describe(a) for a in args)
    origin, params = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return "None"
    if origin is Literal:
        return "one of " + ", ".join(repr(p) for p in params)
    if origin in (tuple, list, abc.Sequence):
        return f"a sequence of ({_describe(params[0])})" if params else "a sequence"
    if origin in (dict, abc.Mapping):
        return f"a mapping of ({_describe(params[0])}) to ({_describe(params[1])})" if params else "a mapping"
    names = {bool: "True or False", int: "an integer", float: "a number (not NaN)", str: "a string"}
    if hint in names:
        return names[hint]
    return f"a {getattr(hint, '__name__', hint)}"
