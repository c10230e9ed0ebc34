"""The event bus's pattern language: which events a subscription receives.

A subscription's pattern is one of:

* a **type pattern**, a string matched against the event's ``type``: ``"purchase.completed"``
  (exact), ``"purchase.*"``, ``"*.failed"``, ``"*"``. ``*`` matches any run of characters, dots
  included; every other character matches itself.
* a **content filter**, a ``dict`` in Amazon EventBridge's event-pattern syntax over the event's
  attributes and its ``data``::

      {"type": ["order.placed"], "data": {"amount": [{"numeric": [">=", 100]}]}}

:func:`compile_pattern` validates a pattern completely and compiles it into a tree of small
matcher objects; :meth:`Pattern.matches` then only walks that tree and never raises, whatever
the event holds. The event is given as a plain mapping: the CloudEvents structured-JSON form.

Content-filter semantics (as EventBridge's): every key of an object must match; an object value
descends into that field; a list value matches when the field matches any of its elements; a
field that is an array matches when any of its elements does; a missing field matches nothing
but ``{"exists": false}``. Matchers: exact values (numbers compare numerically, a string never
equals a number), ``prefix``, ``suffix``, ``equals-ignore-case``, ``wildcard``, ``anything-but``,
``numeric``, ``exists``, ``cidr``; ``"$or": [pattern, ...]`` at any object level.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from legato.errors import InvalidPattern
from legato.model.matchers import (
    Leaf,
    ListNode,
    Node,
    ObjectNode,
    any_of,
    cidr,
    equals_ignore_case,
    exact,
    is_number,
    negated,
    numeric,
    prefix,
    star_regex,
    suffix,
    wildcard,
)

__all__ = ["Pattern", "compile_pattern"]

MAX_DEPTH: Final = 32
"""Deepest nesting of objects (and ``$or``) a content filter may have."""


# --------------------------------------------------------------------------- compiling

_NUMERIC_OPS: Final = frozenset({"=", "<", "<=", ">", ">="})


def _where(path: str) -> str:
    return path or "(top level)"


def _fail(path: str, message: str) -> InvalidPattern:
    return InvalidPattern(f"{_where(path)}: {message}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_number(path: str, what: str, value: object) -> float:
    if not is_number(value):
        raise _fail(path, f"{what} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise _fail(path, f"{what} must be a finite number, got {value!r}")
    return number


def _check_string(path: str, name: str, value: object) -> str:
    if not isinstance(value, str):
        raise _fail(path, f"{name} needs a string, got {value!r}")
    return value


def _wildcard_parts(path: str, name: str, text: str) -> list[str]:
    r"""Split an EventBridge wildcard on its unescaped ``*`` (``\*`` and ``\\`` escape)."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    previous_star = False
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "*\\":
                raise _fail(path, f"{name} {text!r}: a backslash must escape '*' or '\\' (at {i})")
            current.append(text[i + 1])
            i += 2
            previous_star = False
            continue
        if char == "*":
            if previous_star:
                raise _fail(path, f"{name} {text!r}: consecutive '*' at {i}")
            parts.append("".join(current))
            current = []
            previous_star = True
        else:
            current.append(char)
            previous_star = False
        i += 1
    parts.append("".join(current))
    return parts


def _compile_string_matcher(path: str, name: str, value: object, label: str = "") -> Leaf:
    """prefix / suffix (optionally ``{"equals-ignore-case": s}``), equals-ignore-case, wildcard.

    ``label`` names the matcher in messages (``name`` unless given).
    """
    label = label or name
    if name in ("prefix", "suffix") and isinstance(value, Mapping):
        if list(value) != ["equals-ignore-case"]:
            raise _fail(
                path,
                f"{label} takes a string or {{'equals-ignore-case': string}}, got {value!r}",
            )
        text = _check_string(path, f"{label} equals-ignore-case", value["equals-ignore-case"])
        return prefix(text, True) if name == "prefix" else suffix(text, True)
    text = _check_string(path, label, value)
    if name == "prefix":
        return prefix(text)
    if name == "suffix":
        return suffix(text)
    if name == "equals-ignore-case":
        return equals_ignore_case(text)
    return wildcard(_wildcard_parts(path, label, text))


def _compile_anything_but(path: str, value: object) -> Leaf:
    if isinstance(value, Mapping):
        if len(value) != 1:
            raise _fail(path, f"anything-but takes one matcher, got {value!r}")
        ((name, inner),) = value.items()
        if name not in ("prefix", "suffix", "equals-ignore-case", "wildcard"):
            raise _fail(
                path,
                f"anything-but takes a value, a list of values, or prefix, suffix, "
                f"equals-ignore-case or wildcard; got {name!r}",
            )
        if isinstance(inner, Mapping):
            raise _fail(path, f"anything-but {name} needs a string, got {inner!r}")
        return negated(_compile_string_matcher(path, name, inner, f"anything-but {name}"), True)
    values = list(value) if isinstance(value, list | tuple) else [value]
    if not values:
        raise _fail(path, "anything-but needs at least one value, got []")
    for v in values:
        if isinstance(v, float | int) and not isinstance(v, bool):
            _check_number(path, "anything-but value", v)
        elif not (v is None or isinstance(v, str | bool)):
            raise _fail(
                path, f"anything-but values must be strings, numbers, booleans or null; got {v!r}"
            )
    return negated(exact(values), False)


def _compile_numeric(path: str, value: object) -> Leaf:
    usage = "numeric needs an operator and a number, or two of each"
    if not isinstance(value, list | tuple) or len(value) not in (2, 4):
        raise _fail(path, f"{usage}, got {_shown(value)}")
    lower: tuple[float, bool] | None = None
    upper: tuple[float, bool] | None = None
    equal: float | None = None
    for i in range(0, len(value), 2):
        op, number = value[i], value[i + 1]
        if not isinstance(op, str) or op not in _NUMERIC_OPS:
            raise _fail(
                path, f"numeric operator must be one of = < <= > >=, got {op!r} in {_shown(value)}"
            )
        n = _check_number(path, f"numeric {op}", number)
        if op == "=":
            if len(value) != 2:
                raise _fail(path, f"numeric '=' cannot be combined, got {_shown(value)}")
            equal = n
        elif op in (">", ">="):
            if lower is not None:
                raise _fail(path, f"numeric has two lower bounds, got {_shown(value)}")
            lower = (n, op == ">=")
        else:
            if upper is not None:
                raise _fail(path, f"numeric has two upper bounds, got {_shown(value)}")
            upper = (n, op == "<=")
    if equal is not None:
        return numeric((equal, True), (equal, True))
    if (
        lower is not None
        and upper is not None
        and (lower[0] > upper[0] or (lower[0] == upper[0] and not (lower[1] and upper[1])))
    ):
        raise _fail(path, f"numeric range matches no number, got {_shown(value)}")
    return numeric(lower, upper)


def _compile_cidr(path: str, value: object) -> Leaf:
    text = _check_string(path, "cidr", value)
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise _fail(path, f"cidr {text!r} is not an IP network: {exc}") from None
    return cidr(network)


def _shown(value: object) -> str:
    return repr(list(value)) if isinstance(value, tuple) else repr(value)


_STRING_MATCHERS: Final = frozenset({"prefix", "suffix", "equals-ignore-case", "wildcard"})
_MATCHERS: Final = (
    "prefix",
    "suffix",
    "equals-ignore-case",
    "wildcard",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
)


def _compile_list(path: str, items: list[object] | tuple[object, ...]) -> ListNode:
    if not items:
        raise _fail(path, "a list of matchers must not be empty")
    literals: list[object] = []
    matchers: list[Leaf] = []
    exists: set[bool] = set()
    for item in items:
        if isinstance(item, Mapping):
            if len(item) != 1:
                raise _fail(
                    path, f"a matcher is an object with exactly one key, got {_shown(item)}"
                )
            ((name, value),) = item.items()
            if name in _STRING_MATCHERS:
                matchers.append(_compile_string_matcher(path, name, value))
            elif name == "anything-but":
                matchers.append(_compile_anything_but(path, value))
            elif name == "numeric":
                matchers.append(_compile_numeric(path, value))
            elif name == "cidr":
                matchers.append(_compile_cidr(path, value))
            elif name == "exists":
                if not isinstance(value, bool):
                    raise _fail(path, f"exists needs true or false, got {value!r}")
                exists.add(value)
            else:
                raise _fail(path, f"unknown matcher {name!r} (known: {', '.join(_MATCHERS)})")
        elif isinstance(item, list | tuple):
            raise _fail(path, f"a list of matchers cannot hold a list, got {_shown(item)}")
        elif item is None or isinstance(item, str | bool):
            literals.append(item)
        elif isinstance(item, int | float):
            _check_number(path, "an exact value", item)
            literals.append(item)
        else:
            raise _fail(
                path,
                f"a matcher must be a string, number, boolean, null or matcher object; "
                f"got {item!r}",
            )
    if literals:
        matchers.insert(0, exact(literals))
    return ListNode(any_of(matchers) if matchers else None, frozenset(exists))


def _compile_object(path: str, pattern: Mapping[Any, Any], depth: int) -> ObjectNode:
    if depth > MAX_DEPTH:
        raise _fail(path, f"nested deeper than {MAX_DEPTH} levels")
    if not pattern:
        raise _fail(path, "an object in a pattern must not be empty")
    fields: list[tuple[str, Node]] = []
    alternatives: list[ObjectNode] = []
    for key, value in pattern.items():
        if not isinstance(key, str):
            raise _fail(path, f"keys must be strings, got {key!r}")
        where = _join(path, key)
        if key == "$or":
            if not isinstance(value, list | tuple) or not value:
                raise _fail(where, f"$or needs a non-empty list of patterns, got {_shown(value)}")
            for i, alternative in enumerate(value):
                at = f"{where}[{i}]"
                if not isinstance(alternative, Mapping):
                    raise _fail(at, f"each $or alternative must be an object, got {alternative!r}")
                alternatives.append(_compile_object(at, alternative, depth + 1))
        elif isinstance(value, Mapping):
            fields.append((key, _compile_object(where, value, depth + 1)))
        elif isinstance(value, list | tuple):
            fields.append((key, _compile_list(where, value)))
        else:
            raise _fail(
                where, f"a value to match must be inside a list, e.g. [{value!r}], got {value!r}"
            )
    return ObjectNode(tuple(fields), tuple(alternatives))


def _plain(value: object) -> Any:
    """A copy of a content filter as plain dicts and lists (so later changes do not leak in)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- type patterns


def _compile_type(pattern: str) -> Callable[[Mapping[str, Any]], bool]:
    if not pattern:
        raise InvalidPattern("type pattern must not be empty")
    for i, char in enumerate(pattern):
        if not " " <= char <= "~":
            raise InvalidPattern(
                f"type pattern {pattern!r}: character {char!r} at {i} is not printable ASCII"
            )
    parts = pattern.split("*")

    def event_type(event: Mapping[str, Any]) -> object:
        try:
            return event.get("type")
        except Exception:  # an event that is not a mapping after all
            return None

    if len(parts) == 1:

        def exact(e: Mapping[str, Any]) -> bool:
            t = event_type(e)
            return isinstance(t, str) and t == pattern

        return exact
    if all(not p for p in parts):
        return lambda e: isinstance(event_type(e), str)
    if len(parts) == 2:
        head, tail = parts
        least = len(head) + len(tail)

        def two(e: Mapping[str, Any]) -> bool:
            t = event_type(e)
            return (
                isinstance(t, str) and len(t) >= least and t.startswith(head) and t.endswith(tail)
            )

        return two
    regex = star_regex(parts)

    def many(e: Mapping[str, Any]) -> bool:
        t = event_type(e)
        return isinstance(t, str) and regex.fullmatch(t) is not None

    return many


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True, slots=True, eq=False)
class Pattern:
    """A compiled subscription pattern. Build one with :func:`compile_pattern`.

    >>> compile_pattern("purchase.*").matches({"type": "purchase.refund.issued"})
    True
    >>> compile_pattern({"data": {"amount": [{"numeric": [">=", 100]}]}}).matches(
    ...     {"type": "order.placed", "data": {"amount": 99.5}})
    False
    """

    source: str | dict[str, Any]
    """What the user gave (a content filter as a plain copy)."""
    _match: Callable[[Mapping[str, Any]], bool] = field(init=False, repr=False)
    _key: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        source = self.source
        if isinstance(source, str):
            match = _compile_type(source)
            key = "type " + source
        elif isinstance(source, Mapping):
            node = _compile_object("", source, 1)
            key = json.dumps(source, sort_keys=True, default=repr)

            def match(event: Mapping[str, Any]) -> bool:
                return node.match(event)

        else:
            raise InvalidPattern(
                f"a pattern is a type string or a content-filter dict, got "
                f"{type(source).__name__} {source!r}"
            )
        object.__setattr__(self, "_match", match)
        object.__setattr__(self, "_key", key)

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether ``event`` (a CloudEvents structured-JSON dict) is one this pattern selects.

        Never raises: an event of an unexpected shape simply does not match.
        """
        try:
            return self._match(event)
        except Exception:  # pragma: no cover - defensive: matchers are written not to raise
            return False

    def describe(self) -> str:
        """Short human text: ``"type purchase.*"`` or the filter's JSON."""
        if isinstance(self.source, str):
            return f"type {self.source}"
        return json.dumps(self.source, separators=(", ", ": "), default=repr)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pattern):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)


def compile_pattern(pattern: str | Mapping[str, Any]) -> Pattern:
    """Validate ``pattern`` fully and compile it; :class:`InvalidPattern` says what is wrong where.

    A type string compiles to a check of the event's ``type``; a content filter (any mapping,
    copied as plain dicts and lists) to a tree of matchers. Matching never raises.
    """
    if isinstance(pattern, Pattern):
        return pattern
    if isinstance(pattern, Mapping):
        return Pattern(_plain(pattern))
    return Pattern(pattern)
