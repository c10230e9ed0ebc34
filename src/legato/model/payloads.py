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


DEFAULT_MAX_PAYLOAD_BYTES = 2 * 1024 * 1024
"""The default cap on one stored value (arguments, a result, a signal, an answer)."""


def check_payload_limit(limit: object) -> int:
    """Return ``limit`` if it is a usable ``max_payload_bytes``, else raise ``ValueError``."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1024:
        raise ValueError(f"max_payload_bytes must be an integer of at least 1024, got {limit!r}")
    return limit


def encode(value: Any, what: str, limit: int = DEFAULT_MAX_PAYLOAD_BYTES) -> bytes:
    """JSON-encode ``value`` or raise ``PayloadError`` naming ``what``.

    NaN and infinities are refused: JSON has no such numbers, and orjson would store them
    as ``null``, silently changing the value a replay sees. So is a value whose JSON is
    over ``limit`` bytes: history keeps every value for ever and replay reads them all.
    """
    try:
        data = orjson.dumps(value)
    except TypeError as exc:
        raise PayloadError(f"{what} cannot be stored as JSON: {exc}") from None
    size = len(data)
    if size > limit:
        raise PayloadError(
            f"{what} is {_size(size)} as JSON, over the {_size(limit)} limit "
            "(max_payload_bytes): keep large data elsewhere (a file or blob store) and "
            "pass a reference to it"
        )
    if size < 4096:
        data = bytes(memoryview(data))  # right-sized, as dumps() does (inlined: hot path)
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


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} bytes"
