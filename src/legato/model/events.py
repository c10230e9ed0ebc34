"""``legato.Event``: a CloudEvents 1.0 event, and its structured JSON format.

The bus stores, delivers and shows events in this one shape: the CloudEvents core
attributes (``id``, ``source``, ``type``, ``subject``, ``time``, ``datacontenttype``,
``dataschema``), the payload ``data``, Legato's extensions (``correlationid``,
``causationid``, ``traceparent``, ``partitionkey``, ``recordedtime``) and any other
extension a producer set (``extensions``). ``to_json``/``from_json`` speak the
CloudEvents *structured* JSON format (and its batch format), so any CloudEvents SDK reads
what Legato writes and the reverse. Every way in validates: a bad event raises
``InvalidEvent`` naming the attribute, and nothing is half-built.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

import orjson

from legato.errors import InvalidEvent, PayloadError
from legato.model.payloads import encode

SPEC_VERSION = "1.0"
JSON = "application/json"
EVENT_MEDIA_TYPE = "application/cloudevents+json"
BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"

_STRINGS = (
    "subject",
    "datacontenttype",
    "dataschema",
    "correlationid",
    "causationid",
    "traceparent",
    "partitionkey",
)
_TIMES = ("time", "recordedtime")
_CORE = frozenset(
    {"specversion", "id", "source", "type", "data", "data_base64", *_STRINGS, *_TIMES}
)
_FIELDS = ("id", "source", "type", "data", *_STRINGS, *_TIMES)
_NAME = re.compile(r"[a-z0-9]+")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_INT32 = (-(2**31), 2**31 - 1)

ExtensionValue = str | int | bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One CloudEvents 1.0 event. ``id``, ``source`` and ``type`` are required.

    ``data`` is the payload: any JSON value (the default content type is JSON), ``bytes``
    (carried as ``data_base64``), or a ``str`` for a non-JSON ``datacontenttype``. Times
    are aware ``datetime``s. ``extensions`` holds extension attributes other than
    Legato's own (names of lower-case ASCII letters and digits; values strings, 32-bit
    integers or booleans).
    """

    specversion: ClassVar[str] = SPEC_VERSION

    id: str
    source: str
    type: str
    data: Any = None
    subject: str | None = None
    time: datetime | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    correlationid: str | None = None
    causationid: str | None = None
    traceparent: str | None = None
    partitionkey: str | None = None
    recordedtime: datetime | None = None
    extensions: Mapping[str, ExtensionValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("id", "source", "type"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InvalidEvent(f"{name} must be a non-empty string, got {value!r}")
            _check_characters(name, value)
        for name in _STRINGS:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidEvent(f"{name} must be a non-empty string or unset, got {value!r}")
            if value is not None:
                _check_characters(name, value)
        for name in _TIMES:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.utcoffset() is None):
                raise InvalidEvent(
                    f"{name} must be an aware datetime (with a UTC offset), got {value!r}"
                )
        if self.traceparent is not None and not _TRACEPARENT.fullmatch(self.traceparent):
            raise InvalidEvent(
                "traceparent must be a W3C trace context traceparent "
                f"('00-<32 hex>-<16 hex>-<2 hex>'), got {self.traceparent!r}"
            )
        if not isinstance(self.extensions, Mapping):
            raise InvalidEvent(f"extensions must be a mapping, got {self.extensions!r}")
        for name, value in self.extensions.items():
            _check_extension(name, value)
        if isinstance(self.data, bytearray | memoryview):
            object.__setattr__(self, "data", bytes(self.data))
        if not self.is_json and self.data is not None and not isinstance(self.data, str | bytes):
            raise InvalidEvent(
                f"data of content type {self.datacontenttype!r} must be str or bytes, got "
                f"{type(self.data).__name__}"
            )

    @classmethod
    def new(
        cls,
        type: str,
        data: Any = None,
        *,
        source: str,
        subject: str | None = None,
        **attributes: Any,
    ) -> Self:
        """A new event with a fresh id and the current time (other attributes by name)."""
        return cls(
            id=str(uuid.uuid4()),
            source=source,
            type=type,
            data=data,
            subject=subject,
            time=attributes.pop("time", None) or datetime.now(UTC),
            **attributes,
        )

    @property
    def is_json(self) -> bool:
        """True when ``data`` is JSON (no content type, or a JSON one)."""
        media = (self.datacontenttype or JSON).split(";", 1)[0].strip().lower()
        return media in (JSON, "text/json") or media.endswith("+json")

    # -- the structured JSON format ----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The event as a CloudEvents structured-JSON object (unset attributes left out).

        Raises ``InvalidEvent`` if ``data`` cannot be JSON (NaN, a set, an object).
        """
        out: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
        }
        for name in _STRINGS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        for name in _TIMES:
            value = getattr(self, name)
            if value is not None:
                out[name] = format_time(value)
        out.update(self.extensions)
        if isinstance(self.data, bytes):
            out["data_base64"] = base64.b64encode(self.data).decode("ascii")
        elif self.data is not None:
            if self.is_json:
                try:
                    encode(self.data, f"the data of event {self.id!r}")
                except PayloadError as exc:
                    raise InvalidEvent(str(exc)) from None
            out["data"] = self.data
        return out

    def to_json(self) -> str:
        """The event in the CloudEvents structured JSON format (``EVENT_MEDIA_TYPE``)."""
        return orjson.dumps(self.to_dict()).decode()

    @staticmethod
    def to_json_batch(events: Iterable[Event]) -> str:
        """Events in the CloudEvents JSON batch format (``BATCH_MEDIA_TYPE``)."""
        return orjson.dumps([event.to_dict() for event in events]).decode()

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """The event a structured-JSON object describes; ``InvalidEvent`` if it is not one."""
        if not isinstance(obj, Mapping):
            raise InvalidEvent(f"a CloudEvent is a JSON object, got {type(obj).__name__}")
        # A JSON null attribute is an unset one.
        attrs = {k: v for k, v in obj.items() if v is not None}
        version = attrs.get("specversion")
        if version != SPEC_VERSION:
            raise InvalidEvent(
                f"specversion must be {SPEC_VERSION!r}, got {version!r}"
                if "specversion" in attrs
                else "specversion is missing (it must be '1.0')"
            )
        for name in ("id", "source", "type"):
            if name not in attrs:
                raise InvalidEvent(f"{name} is missing: every CloudEvent has id, source, type")
        if "data" in attrs and "data_base64" in attrs:
            raise InvalidEvent("an event has data or data_base64, not both")
        data = attrs.get("data")
        if "data_base64" in attrs:
            raw = attrs["data_base64"]
            try:
                data = base64.b64decode(raw, validate=True) if isinstance(raw, str) else None
            except (binascii.Error, ValueError):
                data = None
            if data is None:
                raise InvalidEvent(f"data_base64 must be a base64 string, got {raw!r:.60}")
        time, recorded = (
            None if name not in attrs else parse_time(attrs[name], name) for name in _TIMES
        )
        extensions = {k: v for k, v in attrs.items() if k not in _CORE}
        strings: dict[str, Any] = {name: attrs.get(name) for name in _STRINGS}
        return cls(
            id=attrs["id"],
            source=attrs["source"],
            type=attrs["type"],
            data=data,
            time=time,
            recordedtime=recorded,
            extensions=extensions,
            **strings,
        )

    @classmethod
    def from_stored(cls, text: bytes | str) -> Event:
        """The event in ``text``, written by ``to_json`` and read back from Legato's own log.

        It was validated when it was published, so it is not validated again: a delivery
        reads every event, and validating costs four times the parse.
        """
        obj = orjson.loads(text)
        event = object.__new__(Event)
        setattr_ = object.__setattr__
        extensions: dict[str, ExtensionValue] = {}
        for name in _FIELDS:
            setattr_(event, name, None)
        for name, value in obj.items():
            if name in _TIMES:
                setattr_(event, name, datetime.fromisoformat(value))
            elif name == "data_base64":
                setattr_(event, "data", base64.b64decode(value))
            elif name in _CORE:
                if name != "specversion":
                    setattr_(event, name, value)
            else:
                extensions[name] = value
        setattr_(event, "extensions", extensions)
        return event

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """The event in ``text`` (structured JSON); ``InvalidEvent`` if it is not one."""
        return cls.from_dict(_json(text, "a CloudEvent"))

    @classmethod
    def from_json_batch(cls, text: str | bytes) -> list[Self]:
        """The events of a JSON batch (an array of structured events)."""
        items = _json(text, "a CloudEvents batch")
        if not isinstance(items, list):
            raise InvalidEvent(f"a CloudEvents batch is a JSON array, got {type(items).__name__}")
        events = []
        for i, item in enumerate(items):
            try:
                events.append(cls.from_dict(item))
            except InvalidEvent as exc:
                raise InvalidEvent(f"event {i} of the batch: {exc}") from None
        return events


def _json(text: str | bytes, what: str) -> Any:
    try:
        return orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise InvalidEvent(f"{what} must be JSON: {exc}") from None


_DISALLOWED = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""What a CloudEvents string may not hold (spec 1.0, type system): control characters and
surrogates (and no database column takes a NUL)."""


def _check_characters(name: str, value: str) -> None:
    found = _DISALLOWED.search(value)
    if found is not None:
        raise InvalidEvent(
            f"{name} holds {found.group()!r}, which a CloudEvents string may not: no control "
            "characters (U+0000-U+001F, U+007F-U+009F) or surrogates"
        )


def _check_extension(name: object, value: object) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidEvent(
            f"extension attribute names are lower-case ASCII letters and digits, got {name!r}"
        )
    if name in _CORE:
        raise InvalidEvent(f"{name!r} is a CloudEvents attribute, not an extension")
    if isinstance(value, bool):
        return
    if isinstance(value, str) and value:
        _check_characters(f"extension {name!r}", value)
        return
    if isinstance(value, int) and _INT32[0] <= value <= _INT32[1]:
        return
    raise InvalidEvent(
        f"extension {name!r} must be a non-empty string, a 32-bit integer or a boolean, "
        f"got {value!r:.60}"
    )


def format_time(when: datetime) -> str:
    """An aware datetime as RFC 3339 (``Z`` for UTC)."""
    text = when.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_time(value: object, name: str = "time") -> datetime:
    """An RFC 3339 timestamp (with ``Z`` or an offset) as an aware datetime."""
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidEvent(
            f"{name} must be an RFC 3339 timestamp with an offset, like "
            f"'2026-12-01T22:41:13Z', got {value!r:.60}"
        )
    day, clock, fraction, offset = match.groups()
    fraction = (fraction or "")[:7]  # a dot and at most microseconds
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(f"{day}T{clock}{fraction}{offset}")
    except ValueError as exc:
        raise InvalidEvent(f"{name} is not a valid time: {value!r} ({exc})") from None


def stored_arguments(args: Iterable[Any]) -> list[Any]:
    """A run's arguments as stored: a ``legato.Event`` as its structured JSON."""
    return [a.to_dict() if isinstance(a, Event) else a for a in args]
