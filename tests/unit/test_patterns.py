"""The event bus's pattern language (legato.model.patterns).

Tested here: type patterns with ``*`` wildcards; every EventBridge content-filter matcher
(exact values, prefix, suffix, equals-ignore-case, wildcard, anything-but in all its forms,
numeric with one and two bounds, exists, cidr), positive and negative; arrays in the event,
nested objects, ``$or`` at the top level and nested beside sibling keys; numbers versus
strings and null; that every malformed pattern raises InvalidPattern naming where the problem
is; and that matching never raises, whatever shape the event has.
"""

from __future__ import annotations

from typing import Any

import pytest

from legato.errors import BusError, InvalidPattern
from legato.model.patterns import Pattern, compile_pattern


def ev(type_: str = "order.placed", **data: Any) -> dict[str, Any]:
    """A CloudEvents structured-JSON event with ``data``."""
    return {
        "specversion": "1.0",
        "id": "e1",
        "source": "/shop",
        "type": type_,
        "subject": "order-7",
        "data": data,
    }


def matches(pattern: str | dict[str, Any], event: dict[str, Any]) -> bool:
    return compile_pattern(pattern).matches(event)


# --------------------------------------------------------------------------- type patterns


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("purchase.completed", "purchase.completed", True),
        ("purchase.completed", "purchase.completed.v2", False),
        ("purchase.completed", "Purchase.completed", False),
        ("purchase.*", "purchase.completed", True),
        ("purchase.*", "purchase.refund.issued", True),
        ("purchase.*", "purchase.", True),
        ("purchase.*", "purchase", False),
        ("purchase.*", "purchases.completed", False),
        ("*.failed", "payment.failed", True),
        ("*.failed", "a.b.failed", True),
        ("*.failed", "payment.failed.retry", False),
        ("order.*.failed", "order.payment.failed", True),
        ("order.*.failed", "order..failed", True),
        ("order.*.failed", "order.failed", False),
        ("a*b*c", "abc", True),
        ("a*b*c", "a-x-b-y-c", True),
        ("a*b*c", "acb", False),
        ("ab*ba", "aba", False),  # prefix and suffix may not overlap
        ("*", "anything.at.all", True),
        ("*", "", True),
        ("**", "x", True),
        ("a.b", "axb", False),  # dots are literal
        ("a+b", "a+b", True),  # so are regex metacharacters
        ("a(b)?", "a(b)?", True),
        ("a(b)?", "a", False),
    ],
)
def test_type_patterns(pattern: str, event_type: str, expected: bool) -> None:
    assert matches(pattern, ev(event_type)) is expected


@pytest.mark.parametrize("pattern", ["order.placed", "order.*", "*", "*.placed", "o*r*d"])
def test_type_pattern_needs_a_string_type(pattern: str) -> None:
    p = compile_pattern(pattern)
    assert not p.matches({"data": {}})
    assert not p.matches({"type": None})
    assert not p.matches({"type": 7})
    assert not p.matches({"type": ["order.placed"]})


def test_type_pattern_describe_and_equality() -> None:
    p = compile_pattern("purchase.*")
    assert p.describe() == "type purchase.*"
    assert p.source == "purchase.*"
    assert p == compile_pattern("purchase.*")
    assert hash(p) == hash(compile_pattern("purchase.*"))
    assert p != compile_pattern("purchase.completed")
    assert isinstance(p, Pattern)


# --------------------------------------------------------------------------- matchers

CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # exact strings, numbers, booleans, null
    ("exact string", {"type": ["order.placed"]}, ev(), True),
    ("exact string no", {"type": ["order.shipped"]}, ev(), False),
    ("exact OR", {"type": ["order.shipped", "order.placed"]}, ev(), True),
    ("exact attribute", {"source": ["/shop"], "subject": ["order-7"]}, ev(), True),
    ("exact number", {"data": {"n": [5]}}, ev(n=5), True),
    ("int matches float", {"data": {"n": [5]}}, ev(n=5.0), True),
    ("float matches int", {"data": {"n": [5.0]}}, ev(n=5), True),
    ("number no", {"data": {"n": [5]}}, ev(n=6), False),
    ("string never a number", {"data": {"n": ["5"]}}, ev(n=5), False),
    ("number never a string", {"data": {"n": [5]}}, ev(n="5"), False),
    ("big ints exactly", {"data": {"n": [2**60 + 1]}}, ev(n=2**60), False),
    ("true", {"data": {"ok": [True]}}, ev(ok=True), True),
    ("true is not 1", {"data": {"ok": [True]}}, ev(ok=1), False),
    ("1 is not true", {"data": {"ok": [1]}}, ev(ok=True), False),
    ("false", {"data": {"ok": [False]}}, ev(ok=False), True),
    ("false is not 0", {"data": {"ok": [False]}}, ev(ok=0), False),
    ("null", {"data": {"x": [None]}}, ev(x=None), True),
    ("null is not missing", {"data": {"x": [None]}}, ev(), False),
    ("null is not empty string", {"data": {"x": [None]}}, ev(x=""), False),
    ("string is not null", {"data": {"x": ["null"]}}, ev(x=None), False),
    ("missing field", {"data": {"x": ["a"]}}, ev(), False),
    # prefix / suffix / equals-ignore-case / wildcard
    ("prefix", {"type": [{"prefix": "order."}]}, ev(), True),
    ("prefix no", {"type": [{"prefix": "Order."}]}, ev(), False),
    ("prefix strings only", {"data": {"n": [{"prefix": "1"}]}}, ev(n=12), False),
    ("prefix ignore case", {"type": [{"prefix": {"equals-ignore-case": "ORDER."}}]}, ev(), True),
    ("suffix", {"type": [{"suffix": ".placed"}]}, ev(), True),
    ("suffix no", {"type": [{"suffix": ".shipped"}]}, ev(), False),
    ("suffix strings only", {"data": {"n": [{"suffix": "2"}]}}, ev(n=12), False),
    ("suffix ignore case", {"type": [{"suffix": {"equals-ignore-case": ".PLACED"}}]}, ev(), True),
    ("equals-ignore-case", {"type": [{"equals-ignore-case": "ORDER.Placed"}]}, ev(), True),
    ("equals-ignore-case no", {"type": [{"equals-ignore-case": "order.place"}]}, ev(), False),
    (
        "equals-ignore-case strings",
        {"data": {"b": [{"equals-ignore-case": "true"}]}},
        ev(b=True),
        False,
    ),
    ("wildcard", {"type": [{"wildcard": "o*.p*d"}]}, ev(), True),
    ("wildcard dots literal", {"type": [{"wildcard": "order?placed"}]}, ev(), False),
    ("wildcard no", {"type": [{"wildcard": "*.shipped"}]}, ev(), False),
    ("wildcard no star", {"type": [{"wildcard": "order.placed"}]}, ev(), True),
    ("wildcard escaped star", {"data": {"s": [{"wildcard": "a\\*b"}]}}, ev(s="a*b"), True),
    ("wildcard escaped star no", {"data": {"s": [{"wildcard": "a\\*b"}]}}, ev(s="axb"), False),
    ("wildcard strings only", {"data": {"n": [{"wildcard": "1*"}]}}, ev(n=12), False),
    # anything-but: a value, a list, prefix, suffix (and the rest)
    ("anything-but value", {"type": [{"anything-but": "order.shipped"}]}, ev(), True),
    ("anything-but value no", {"type": [{"anything-but": "order.placed"}]}, ev(), False),
    ("anything-but list", {"type": [{"anything-but": ["a", "b"]}]}, ev(), True),
    ("anything-but list no", {"type": [{"anything-but": ["a", "order.placed"]}]}, ev(), False),
    ("anything-but number", {"data": {"n": [{"anything-but": [1, 2]}]}}, ev(n=3), True),
    ("anything-but number no", {"data": {"n": [{"anything-but": [1, 2]}]}}, ev(n=2.0), False),
    ("anything-but missing", {"data": {"x": [{"anything-but": "a"}]}}, ev(), False),
    ("anything-but prefix", {"type": [{"anything-but": {"prefix": "user."}}]}, ev(), True),
    ("anything-but prefix no", {"type": [{"anything-but": {"prefix": "order."}}]}, ev(), False),
    (
        "anything-but prefix str",
        {"data": {"n": [{"anything-but": {"prefix": "x"}}]}},
        ev(n=1),
        False,
    ),
    ("anything-but suffix", {"type": [{"anything-but": {"suffix": ".failed"}}]}, ev(), True),
    ("anything-but suffix no", {"type": [{"anything-but": {"suffix": ".placed"}}]}, ev(), False),
    (
        "anything-but ignore case",
        {"type": [{"anything-but": {"equals-ignore-case": "ORDER.PLACED"}}]},
        ev(),
        False,
    ),
    ("anything-but wildcard", {"type": [{"anything-but": {"wildcard": "*.placed"}}]}, ev(), False),
    # numeric
    ("numeric =", {"data": {"n": [{"numeric": ["=", 100]}]}}, ev(n=100.0), True),
    ("numeric = no", {"data": {"n": [{"numeric": ["=", 100]}]}}, ev(n=100.5), False),
    ("numeric >=", {"data": {"n": [{"numeric": [">=", 100]}]}}, ev(n=100), True),
    ("numeric >", {"data": {"n": [{"numeric": [">", 100]}]}}, ev(n=100), False),
    ("numeric <", {"data": {"n": [{"numeric": ["<", 0]}]}}, ev(n=-0.5), True),
    ("numeric <=", {"data": {"n": [{"numeric": ["<=", 0]}]}}, ev(n=0), True),
    ("numeric < no", {"data": {"n": [{"numeric": ["<", 0]}]}}, ev(n=0), False),
    ("numeric not strings", {"data": {"n": [{"numeric": [">", 0]}]}}, ev(n="5"), False),
    ("numeric not booleans", {"data": {"n": [{"numeric": [">", 0]}]}}, ev(n=True), False),
    ("numeric not null", {"data": {"n": [{"numeric": ["<", 1]}]}}, ev(n=None), False),
    ("numeric range in", {"data": {"n": [{"numeric": [">", 0, "<=", 5]}]}}, ev(n=5), True),
    ("numeric range low", {"data": {"n": [{"numeric": [">", 0, "<=", 5]}]}}, ev(n=0), False),
    ("numeric range high", {"data": {"n": [{"numeric": [">", 0, "<=", 5]}]}}, ev(n=5.01), False),
    ("numeric range mid", {"data": {"n": [{"numeric": [">=", 0, "<", 5]}]}}, ev(n=2.5), True),
    ("numeric range upper first", {"data": {"n": [{"numeric": ["<", 5, ">", 0]}]}}, ev(n=1), True),
    ("numeric range point", {"data": {"n": [{"numeric": [">=", 3, "<=", 3]}]}}, ev(n=3), True),
    # exists
    ("exists true present", {"data": {"x": [{"exists": True}]}}, ev(x="a"), True),
    ("exists true null", {"data": {"x": [{"exists": True}]}}, ev(x=None), True),
    ("exists true missing", {"data": {"x": [{"exists": True}]}}, ev(), False),
    ("exists false missing", {"data": {"x": [{"exists": False}]}}, ev(), True),
    ("exists false present", {"data": {"x": [{"exists": False}]}}, ev(x=0), False),
    ("exists false no data", {"data": {"x": [{"exists": False}]}}, {"type": "t"}, True),
    ("exists true no data", {"data": {"x": [{"exists": True}]}}, {"type": "t"}, False),
    ("exists attribute", {"subject": [{"exists": True}]}, ev(), True),
    ("exists attribute missing", {"correlationid": [{"exists": False}]}, ev(), True),
    ("exists is for leaves", {"data": {"x": [{"exists": True}]}}, ev(x={"y": 1}), False),
    ("exists false on object", {"data": {"x": [{"exists": False}]}}, ev(x={"y": 1}), True),
    ("exists true empty array", {"data": {"x": [{"exists": True}]}}, ev(x=[]), False),
    ("exists or value", {"data": {"x": [{"exists": False}, "a"]}}, ev(x="a"), True),
    ("exists or value no", {"data": {"x": [{"exists": False}, "a"]}}, ev(x="b"), False),
    # cidr
    ("cidr v4", {"data": {"ip": [{"cidr": "10.0.0.0/24"}]}}, ev(ip="10.0.0.255"), True),
    ("cidr v4 no", {"data": {"ip": [{"cidr": "10.0.0.0/24"}]}}, ev(ip="10.0.1.0"), False),
    ("cidr v6", {"data": {"ip": [{"cidr": "2001:db8::/32"}]}}, ev(ip="2001:db8::1"), True),
    ("cidr other version", {"data": {"ip": [{"cidr": "10.0.0.0/8"}]}}, ev(ip="::1"), False),
    ("cidr not an ip", {"data": {"ip": [{"cidr": "10.0.0.0/8"}]}}, ev(ip="10.x"), False),
    ("cidr not a string", {"data": {"ip": [{"cidr": "10.0.0.0/8"}]}}, ev(ip=167772161), False),
    ("cidr host", {"data": {"ip": [{"cidr": "10.0.0.1/32"}]}}, ev(ip="10.0.0.1"), True),
    # arrays in the event
    ("array any element", {"data": {"tags": ["vip"]}}, ev(tags=["new", "vip"]), True),
    ("array none", {"data": {"tags": ["vip"]}}, ev(tags=["new", "old"]), False),
    ("array empty", {"data": {"tags": ["vip"]}}, ev(tags=[]), False),
    ("array nested", {"data": {"tags": ["vip"]}}, ev(tags=[["new"], ["vip"]]), True),
    ("array prefix", {"data": {"tags": [{"prefix": "v"}]}}, ev(tags=["new", "vip"]), True),
    ("array numeric", {"data": {"xs": [{"numeric": [">", 10]}]}}, ev(xs=[1, 2, 30]), True),
    ("array numeric no", {"data": {"xs": [{"numeric": [">", 10]}]}}, ev(xs=[1, 2, 3]), False),
    ("array anything-but", {"data": {"xs": [{"anything-but": "a"}]}}, ev(xs=["a", "b"]), True),
    ("array anything-but no", {"data": {"xs": [{"anything-but": "a"}]}}, ev(xs=["a"]), False),
    (
        "array of objects",
        {"data": {"items": {"sku": ["B"], "qty": [{"numeric": [">", 1]}]}}},
        ev(items=[{"sku": "A", "qty": 5}, {"sku": "B", "qty": 2}]),
        True,
    ),
    (
        "array of objects: same element",
        {"data": {"items": {"sku": ["B"], "qty": [{"numeric": [">", 3]}]}}},
        ev(items=[{"sku": "A", "qty": 5}, {"sku": "B", "qty": 2}]),
        False,
    ),
    # nested objects
    ("nested", {"data": {"customer": {"tier": ["gold"]}}}, ev(customer={"tier": "gold"}), True),
    ("nested no", {"data": {"customer": {"tier": ["gold"]}}}, ev(customer={"tier": "tin"}), False),
    ("nested missing", {"data": {"customer": {"tier": ["gold"]}}}, ev(), False),
    ("nested scalar", {"data": {"customer": {"tier": ["gold"]}}}, ev(customer="gold"), False),
    ("leaf list on object", {"data": {"customer": ["gold"]}}, ev(customer={"t": "gold"}), False),
    (
        "deep AND",
        {"type": ["order.placed"], "data": {"a": {"b": {"c": [1]}}, "d": ["x"]}},
        ev(a={"b": {"c": 1}}, d="x"),
        True,
    ),
    (
        "deep AND one fails",
        {"type": ["order.placed"], "data": {"a": {"b": {"c": [1]}}, "d": ["x"]}},
        ev(a={"b": {"c": 1}}, d="y"),
        False,
    ),
    # $or
    ("$or top first", {"$or": [{"type": ["order.placed"]}, {"source": ["/x"]}]}, ev(), True),
    ("$or top second", {"$or": [{"type": ["x"]}, {"source": ["/shop"]}]}, ev(), True),
    ("$or top none", {"$or": [{"type": ["x"]}, {"source": ["/x"]}]}, ev(), False),
    (
        "$or with sibling",
        {"source": ["/shop"], "$or": [{"type": ["x"]}, {"data": {"n": [{"numeric": [">", 1]}]}}]},
        ev(n=2),
        True,
    ),
    (
        "$or sibling fails",
        {"source": ["/other"], "$or": [{"type": ["order.placed"]}, {"data": {"n": [2]}}]},
        ev(n=2),
        False,
    ),
    (
        "$or nested",
        {
            "data": {
                "kind": ["card"],
                "$or": [{"amount": [{"numeric": [">", 100]}]}, {"vip": [True]}],
            }
        },
        ev(kind="card", amount=5, vip=True),
        True,
    ),
    (
        "$or nested none",
        {
            "data": {
                "kind": ["card"],
                "$or": [{"amount": [{"numeric": [">", 100]}]}, {"vip": [True]}],
            }
        },
        ev(kind="card", amount=5, vip=False),
        False,
    ),
    (
        "$or nested sibling fails",
        {
            "data": {
                "kind": ["cash"],
                "$or": [{"amount": [{"numeric": [">", 100]}]}, {"vip": [True]}],
            }
        },
        ev(kind="card", amount=500),
        False,
    ),
    (
        "$or inside $or",
        {"$or": [{"type": ["x"]}, {"$or": [{"source": ["/y"]}, {"subject": ["order-7"]}]}]},
        ev(),
        True,
    ),
    ("$or exists", {"$or": [{"data": {"a": [{"exists": True}]}}, {"type": ["x"]}]}, ev(a=1), True),
]


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [pytest.param(p, e, x, id=name) for name, p, e, x in CASES],
)
def test_content_filters(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, event) is expected


def test_the_brief_example() -> None:
    p = compile_pattern({"type": ["order.placed"], "data": {"amount": [{"numeric": [">=", 100]}]}})
    assert p.matches(ev(amount=100))
    assert p.matches(ev(amount=250.75))
    assert not p.matches(ev(amount=99.99))
    assert not p.matches(ev("order.shipped", amount=500))
    assert not p.matches(ev())


def test_content_filter_describe_copy_and_equality() -> None:
    source: dict[str, Any] = {"type": ["order.placed"], "data": {"n": [{"numeric": [">", 1]}]}}
    p = compile_pattern(source)
    assert p.describe() == '{"type": ["order.placed"], "data": {"n": [{"numeric": [">", 1]}]}}'
    assert p.source == source
    source["type"].append("order.shipped")  # the pattern kept its own copy
    assert not p.matches(ev("order.shipped", n=5))
    assert p.matches(ev(n=5))
    assert p == compile_pattern({"data": {"n": [{"numeric": [">", 1]}]}, "type": ["order.placed"]})
    assert hash(p) == hash(
        compile_pattern({"data": {"n": [{"numeric": [">", 1]}]}, "type": ["order.placed"]})
    )
    assert compile_pattern({"a": [True]}) != compile_pattern({"a": [1]})
    assert compile_pattern(p) is p


def test_tuples_count_as_lists() -> None:
    p = compile_pattern({"type": ("a", "order.placed"), "data": {"n": [{"numeric": (">", 1)}]}})
    assert p.source == {"type": ["a", "order.placed"], "data": {"n": [{"numeric": [">", 1]}]}}
    assert p.matches(ev(n=2))
    assert p.matches({"type": "a", "data": {"n": (0, 7)}})


# --------------------------------------------------------------------------- malformed patterns

BAD: list[tuple[object, str]] = [
    # (pattern, text the message must contain: where, and what)
    ("", "type pattern must not be empty"),
    ("order.\x00", "at 6 is not printable ASCII"),
    ("caf\u00e9.*", "at 3 is not printable ASCII"),
    (42, "got int 42"),
    (None, "got NoneType"),
    (["order.placed"], "got list"),
    ({}, "(top level): an object in a pattern must not be empty"),
    ({"type": "order.placed"}, "type: a value to match must be inside a list"),
    ({"data": {"amount": 5}}, "data.amount: a value to match must be inside a list"),
    ({"data": {}}, "data: an object in a pattern must not be empty"),
    ({"type": []}, "type: a list of matchers must not be empty"),
    ({"type": [["a"]]}, "type: a list of matchers cannot hold a list"),
    (
        {"type": [{"prefix": "a", "suffix": "b"}]},
        "type: a matcher is an object with exactly one key",
    ),
    ({"type": [{}]}, "type: a matcher is an object with exactly one key"),
    ({"type": [{"regex": "a.*"}]}, "type: unknown matcher 'regex'"),
    ({"data": {"x": [{"Prefix": "a"}]}}, "data.x: unknown matcher 'Prefix'"),
    ({"type": [{"prefix": 5}]}, "type: prefix needs a string, got 5"),
    ({"type": [{"prefix": {"exists": True}}]}, "type: prefix takes a string or"),
    ({"type": [{"suffix": None}]}, "type: suffix needs a string"),
    ({"type": [{"equals-ignore-case": ["a"]}]}, "type: equals-ignore-case needs a string"),
    ({"type": [{"wildcard": 1}]}, "type: wildcard needs a string"),
    ({"type": [{"wildcard": "a**b"}]}, "type: wildcard 'a**b': consecutive '*'"),
    ({"type": [{"wildcard": "a\\b"}]}, "type: wildcard 'a\\\\b': a backslash must escape"),
    ({"data": {"amount": [{"numeric": [">="]}]}}, "data.amount: numeric needs an operator"),
    ({"data": {"amount": [{"numeric": ">= 5"}]}}, "data.amount: numeric needs an operator"),
    ({"data": {"a": [{"numeric": ["~", 5]}]}}, "data.a: numeric operator must be one of"),
    ({"data": {"a": [{"numeric": [">", "5"]}]}}, "data.a: numeric > must be a number, got '5'"),
    ({"data": {"a": [{"numeric": [">", True]}]}}, "data.a: numeric > must be a number"),
    ({"data": {"a": [{"numeric": [">", float("nan")]}]}}, "data.a: numeric > must be a finite"),
    ({"data": {"a": [{"numeric": [">", 1, ">", 2]}]}}, "data.a: numeric has two lower bounds"),
    ({"data": {"a": [{"numeric": ["<", 1, "<=", 2]}]}}, "data.a: numeric has two upper bounds"),
    ({"data": {"a": [{"numeric": ["=", 1, "<", 2]}]}}, "data.a: numeric '=' cannot be combined"),
    ({"data": {"a": [{"numeric": [">", 5, "<", 1]}]}}, "data.a: numeric range matches no number"),
    ({"data": {"a": [{"numeric": [">", 5, "<=", 5]}]}}, "data.a: numeric range matches no number"),
    ({"data": {"a": [{"exists": "yes"}]}}, "data.a: exists needs true or false, got 'yes'"),
    ({"data": {"a": [{"exists": 1}]}}, "data.a: exists needs true or false"),
    ({"data": {"ip": [{"cidr": "10.0.0.0/33"}]}}, "data.ip: cidr '10.0.0.0/33' is not an IP"),
    ({"data": {"ip": [{"cidr": "localhost"}]}}, "data.ip: cidr 'localhost' is not an IP"),
    ({"data": {"ip": [{"cidr": 10}]}}, "data.ip: cidr needs a string"),
    ({"type": [{"anything-but": []}]}, "type: anything-but needs at least one value"),
    ({"type": [{"anything-but": {"numeric": [">", 1]}}]}, "type: anything-but takes a value"),
    ({"type": [{"anything-but": {"prefix": "a", "suffix": "b"}}]}, "type: anything-but takes one"),
    ({"type": [{"anything-but": {"prefix": 3}}]}, "type: anything-but prefix needs a string"),
    ({"type": [{"anything-but": [["a"]]}]}, "type: anything-but values must be strings"),
    ({"type": [{"anything-but": {"a": 1}}]}, "type: anything-but takes a value"),
    ({"type": [object()]}, "type: a matcher must be a string, number, boolean, null"),
    ({"type": [float("inf")]}, "type: an exact value must be a finite number"),
    ({1: ["a"]}, "(top level): keys must be strings, got 1"),
    ({"data": {2: ["a"]}}, "data: keys must be strings, got 2"),
    ({"$or": {"type": ["a"]}}, "$or: $or needs a non-empty list of patterns"),
    ({"$or": []}, "$or: $or needs a non-empty list of patterns"),
    ({"$or": [{"type": ["a"]}, "b"]}, "$or[1]: each $or alternative must be an object"),
    ({"$or": [{"type": ["a"]}, {}]}, "$or[1]: an object in a pattern must not be empty"),
    (
        {"data": {"$or": [{"a": ["x"]}, {"b": {"c": [{"numeric": [">"]}]}}]}},
        "data.$or[1].b.c: numeric needs an operator",
    ),
]


@pytest.mark.parametrize(("pattern", "message"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_malformed_patterns_name_the_problem(pattern: Any, message: str) -> None:
    with pytest.raises(InvalidPattern) as caught:
        compile_pattern(pattern)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, BusError)


def test_too_deep_is_refused() -> None:
    pattern: dict[str, Any] = {"leaf": ["x"]}
    for _ in range(40):
        pattern = {"a": pattern}
    with pytest.raises(InvalidPattern, match="nested deeper than"):
        compile_pattern(pattern)


# --------------------------------------------------------------------------- matching never raises

ODD_EVENTS: list[Any] = [
    {},
    {"type": "order.placed"},
    {"type": None, "data": None},
    {"type": 3, "data": "a string"},
    {"type": ["order.placed"], "data": [1, "2", None, {"amount": 200}]},
    {"type": {"x": 1}, "data": 17},
    {"data": {"amount": "lots", "ip": 10, "tags": {"x": 1}, "customer": [[["gold"]]]}},
    {"data": {"amount": None, "ip": ["::1", 12, None], "tags": [[], [[]]]}},
    {"data": {"amount": 10**400, "ip": "999.1.1.1", "customer": {"tier": 5}}},
    {"data": {"amount": float("nan"), "ip": b"10.0.0.1", "customer": object()}},
    {"data": {"amount": [True, False], "tags": (1, 2), "customer": {"tier": [None, ["gold"]]}}},
    {"data": {"amount": float("inf"), "customer": [{"tier": "tin"}, "gold", 3]}},
    None,
    [],
    "order.placed",
]

ALL_MATCHERS: list[str | dict[str, Any]] = [
    "order.placed",
    "order.*",
    "*",
    "o*d*d",
    {
        "type": [{"prefix": "o"}, {"suffix": "d"}, {"wildcard": "*.*"}, "x", 1, None, True],
        "data": {
            "amount": [{"numeric": [">", 0, "<", 1000]}, {"anything-but": [1, "a"]}],
            "ip": [{"cidr": "10.0.0.0/8"}, {"cidr": "::/0"}, {"equals-ignore-case": "A"}],
            "tags": [{"exists": True}, {"anything-but": {"prefix": "x"}}],
            "customer": {"tier": ["gold", {"exists": False}]},
        },
    },
    {
        "$or": [
            {"data": {"amount": [{"numeric": ["=", 200]}]}},
            {"data": {"ip": [{"exists": True}]}},
        ]
    },
    {"data": {"customer": {"$or": [{"tier": ["gold"]}, {"tier": [{"anything-but": "tin"}]}]}}},
]


@pytest.mark.parametrize("event", ODD_EVENTS, ids=[str(i) for i in range(len(ODD_EVENTS))])
@pytest.mark.parametrize("pattern", ALL_MATCHERS, ids=[str(i) for i in range(len(ALL_MATCHERS))])
def test_matching_never_raises(pattern: str | dict[str, Any], event: Any) -> None:
    assert compile_pattern(pattern).matches(event) in (True, False)


def test_odd_events_match_sensibly() -> None:
    gold = compile_pattern({"data": {"customer": {"tier": ["gold"]}}})
    assert not gold.matches({"type": "t"})
    assert not gold.matches({"type": "t", "data": "gold"})
    assert not gold.matches({"type": "t", "data": ["gold"]})
    assert gold.matches({"type": "t", "data": [{"customer": {"tier": "gold"}}]})
    assert gold.matches({"type": "t", "data": {"customer": {"tier": [None, ["gold"]]}}})
    no_data = compile_pattern({"data": {"x": [{"exists": False}]}})
    assert no_data.matches({"type": "t", "data": None})
    assert no_data.matches({"type": "t", "data": "text"})
    assert not no_data.matches({"type": "t", "data": {"x": None}})
