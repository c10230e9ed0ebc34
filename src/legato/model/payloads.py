"""JSON payloads: the one place values become the bytes that history stores."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import orjson

from legato.errors import PayloadError


def dumps(value: Any) -> bytes:
    """``orjson.dumps``, right-sized.

    orjson (3.12+) returns small outputs in a 4 KiB buffer it never shrinks; ten thousand
    runs in flight, each holding a few records, would keep ~100 MB of slack alive. The copy
    costs ~0.2 µs.
    """
    data = orjson.dumps(value)
    return bytes(memoryview(data)) if len(data) < 4096 else data


def encode(value: Any, what: str) -> bytes:
    """JSON-encode ``value`` or raise ``PayloadError`` naming ``what``.

    NaN and infinities are refused: JSON has no such numbers, and orjson would store them
    as ``null``, silently changing the value a replay sees.
    """
    try:
        data = dumps(value)
    except TypeError as exc:
        raise PayloadError(f"{what} cannot be stored as JSON: {exc}") from None
    # orjson writes a non-finite float as null: only then is the value worth walking.
    if b"null" in data:
        bad = _non_finite(value)
        if bad is not None:
            raise PayloadError(
                f"{what} cannot be stored as JSON: {bad} is not a JSON number "
                "(pass None or a string instead)"
            )
    return data


def _non_finite(value: Any) -> float | None:
    """The first NaN or infinity inside ``value`` (already known to serialize), or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))
    return None
