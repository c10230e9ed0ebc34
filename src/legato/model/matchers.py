"""The pieces a compiled pattern is made of (``legato.model.patterns`` builds them).

Leaf matchers are plain functions of one scalar value; ``ListNode`` and ``ObjectNode``
apply them to an event's fields. Matching never raises, whatever the event holds.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Final, TypeGuard

# --------------------------------------------------------------------------- event values

MISSING: Final = object()
"""Stands for a field the event does not have."""

Leaf = Callable[[object], bool]
"""A matcher of one leaf value (a scalar of the event; never a list or an object)."""


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def leaves(value: object) -> Iterator[object]:
    """The leaf values of a field: arrays flattened (however deep), objects skipped."""
    if value is MISSING:
        return
    for item in elements(value):
        if not isinstance(item, Mapping):
            yield item


def elements(value: object) -> Iterator[object]:
    """What an object pattern is applied to: each array element (flattened), or the value."""
    if not isinstance(value, list | tuple):
        yield value
        return
    stack: list[Iterator[object]] = [iter(value)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list | tuple):
                stack.append(iter(item))
                break
            yield item
        else:
            stack.pop()


# --------------------------------------------------------------------------- compiled nodes


class Node:
    """A compiled piece of a content filter, applied to one field's value (or ``MISSING``)."""

    __slots__ = ()

    def match(self, value: object) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


class ListNode(Node):
    """A list of matchers: the field matches when any leaf matches any matcher (OR)."""

    __slots__ = ("exists", "leaf")

    def __init__(self, leaf: Leaf | None, exists: frozenset[bool]) -> None:
        self.leaf = leaf
        self.exists = exists  # {True}: "exists": true is listed; {False}: false; both: both

    def match(self, value: object) -> bool:
        leaf = self.leaf
        if not self.exists:
            if leaf is None:  # pragma: no cover - compile never builds this
                return False
            return any(leaf(v) for v in leaves(value))
        present = False
        for v in leaves(value):
            if leaf is not None and leaf(v):
                return True
            present = True
        return present in self.exists


class ObjectNode(Node):
    """An object: every field must match (AND), and one of the ``$or`` alternatives if any."""

    __slots__ = ("alternatives", "fields")

    def __init__(
        self, fields: tuple[tuple[str, Node], ...], alternatives: tuple[ObjectNode, ...]
    ) -> None:
        self.fields = fields
        self.alternatives = alternatives

    def match(self, value: object) -> bool:
        if isinstance(value, list | tuple):
            items = list(elements(value))
            if items:
                return any(self._match_one(e) for e in items)
            return self._match_one(MISSING)
        return self._match_one(value)

    def _match_one(self, value: object) -> bool:
        obj = value if isinstance(value, Mapping) else None
        for name, node in self.fields:
            if not node.match(MISSING if obj is None else obj.get(name, MISSING)):
                return False
        return not self.alternatives or any(alt._match_one(value) for alt in self.alternatives)


# --------------------------------------------------------------------------- leaf matchers


def any_of(parts: list[Leaf]) -> Leaf:
    if len(parts) == 1:
        return parts[0]
    matchers = tuple(parts)
    return lambda v: any(m(v) for m in matchers)


def exact(values: list[object]) -> Leaf:
    """Exact values: strings by equality, numbers numerically, booleans and null by identity."""
    strings = frozenset(v for v in values if isinstance(v, str))
    numbers = frozenset(v for v in values if is_number(v))  # 5 and 5.0 are one member
    bools = frozenset(v for v in values if isinstance(v, bool))
    null = any(v is None for v in values)

    def exact(v: object) -> bool:
        if isinstance(v, str):
            return v in strings
        if isinstance(v, bool):
            return v in bools
        if isinstance(v, int | float):
            return v in numbers
        return v is None and null

    return exact


def prefix(s: str, ignore_case: bool = False) -> Leaf:
    if ignore_case:
        folded = s.casefold()
        return lambda v: isinstance(v, str) and v.casefold().startswith(folded)
    return lambda v: isinstance(v, str) and v.startswith(s)


def suffix(s: str, ignore_case: bool = False) -> Leaf:
    if ignore_case:
        folded = s.casefold()
        return lambda v: isinstance(v, str) and v.casefold().endswith(folded)
    return lambda v: isinstance(v, str) and v.endswith(s)


def equals_ignore_case(s: str) -> Leaf:
    folded = s.casefold()
    return lambda v: isinstance(v, str) and v.casefold() == folded


def star_regex(parts: list[str], ignore_case: bool = False) -> re.Pattern[str]:
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile(".*".join(re.escape(p) for p in parts), flags)


def wildcard(parts: list[str]) -> Leaf:
    """``parts``: the literal text between the ``*``s."""
    if len(parts) == 1:
        literal = parts[0]
        return lambda v: isinstance(v, str) and v == literal
    regex = star_regex(parts)
    return lambda v: isinstance(v, str) and regex.fullmatch(v) is not None


def numeric(lower: tuple[float, bool] | None, upper: tuple[float, bool] | None) -> Leaf:
    """Bounds as (number, inclusive)."""

    def numeric(v: object) -> bool:
        if not is_number(v):
            return False
        x = v
        if lower is not None and not (x >= lower[0] if lower[1] else x > lower[0]):
            return False
        return upper is None or (x <= upper[0] if upper[1] else x < upper[0])

    return numeric


def cidr(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Leaf:
    def cidr(v: object) -> bool:
        if not isinstance(v, str):
            return False
        try:
            address = ipaddress.ip_address(v)
        except ValueError:
            return False
        return address.version == network.version and address in network

    return cidr


def negated(leaf: Leaf, strings_only: bool) -> Leaf:
    if strings_only:
        return lambda v: isinstance(v, str) and not leaf(v)
    return lambda v: not leaf(v)
