"""``legato.Event``: CloudEvents 1.0, its structured JSON format, and what it refuses.

The format is the one the CloudEvents JSON spec defines (the example below is the spec's
own), so events round-trip through any CloudEvents SDK; every bad input raises
``InvalidEvent`` naming the attribute.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

import legato
from legato.errors import BusError, InvalidEvent
from legato.model.events import BATCH_MEDIA_TYPE, EVENT_MEDIA_TYPE, format_time, parse_time

Event = legato.Event
T = datetime(2026, 12, 1, 22, 41, 13, 222039, tzinfo=UTC)
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# The example of the CloudEvents JSON format spec (section 3.1), with a JSON data member.
SPEC_EXAMPLE = """{
    "specversion" : "1.0",
    "type" : "com.example.someevent",
    "source" : "/mycontext",
    "subject": null,
    "id" : "C234-1234-1234",
    "time" : "2018-04-05T17:31:00Z",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "datacontenttype" : "application/json",
    "data" : {"appinfoA" : "abc", "appinfoB" : 123, "appinfoC" : true}
}"""


def full() -> Event:
    return Event(
        id="e-1",
        source="/shop/orders",
        type="order.placed",
        data={"order": "o-1", "amount": 120, "lines": [1, 2]},
        subject="o-1",
        time=T,
        datacontenttype="application/json",
        dataschema="https://example.com/order.json",
        correlationid="purchase-7",
        causationid="e-0",
        traceparent=TRACE,
        partitionkey="o-1",
        recordedtime=T + timedelta(milliseconds=3),
        extensions={"tenant": "acme", "priority": 3, "replayed": False},
    )


def test_an_event_round_trips_through_structured_json() -> None:
    event = full()
    text = event.to_json()
    assert Event.from_json(text) == event
    assert Event.from_json(text.encode()) == event


def test_structured_json_is_flat_with_the_spec_names() -> None:
    doc = orjson.loads(full().to_json())
    assert doc["specversion"] == "1.0"
    assert doc["time"] == "2026-12-01T22:41:13.222039Z"
    assert doc["correlationid"] == "purchase-7" and doc["tenant"] == "acme"
    assert doc["priority"] == 3 and doc["replayed"] is False
    assert doc["data"] == {"order": "o-1", "amount": 120, "lines": [1, 2]}
    assert "extensions" not in doc and "data_base64" not in doc


def test_the_spec_example_reads_and_null_means_unset() -> None:
    event = Event.from_json(SPEC_EXAMPLE)
    assert (event.id, event.type, event.source) == (
        "C234-1234-1234",
        "com.example.someevent",
        "/mycontext",
    )
    assert event.subject is None
    assert event.time == datetime(2018, 4, 5, 17, 31, tzinfo=UTC)
    assert event.extensions == {"comexampleextension1": "value", "comexampleothervalue": 5}
    assert event.data == {"appinfoA": "abc", "appinfoB": 123, "appinfoC": True}


def test_a_batch_round_trips() -> None:
    events = [full(), Event(id="e-2", source="/s", type="t")]
    text = Event.to_json_batch(events)
    assert orjson.loads(text)[1] == {"specversion": "1.0", "id": "e-2", "source": "/s", "type": "t"}
    assert Event.from_json_batch(text) == events
    assert Event.from_json_batch("[]") == []
    assert (EVENT_MEDIA_TYPE, BATCH_MEDIA_TYPE) == (
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
    )


def test_binary_data_travels_as_data_base64_and_text_as_data() -> None:
    binary = Event(
        id="b", source="/s", type="t", data=b"\x00\xffpdf", datacontenttype="application/pdf"
    )
    assert orjson.loads(binary.to_json())["data_base64"] == "AP9wZGY="
    assert Event.from_json(binary.to_json()).data == b"\x00\xffpdf"
    text = Event(id="x", source="/s", type="t", data="<p>hi</p>", datacontenttype="text/html")
    assert Event.from_json(text.to_json()) == text
    assert Event(
        id="j", source="/s", type="t", datacontenttype="application/cloudevents+json"
    ).is_json


def test_new_makes_an_id_and_a_time() -> None:
    a = Event.new("order.placed", {"id": 1}, source="/shop", subject="o-1", correlationid="c")
    b = Event.new("order.placed", {"id": 1}, source="/shop")
    assert a.id != b.id and a.time is not None and a.time.tzinfo is not None
    assert (a.subject, a.correlationid, a.data) == ("o-1", "c", {"id": 1})


def test_times_are_rfc_3339_with_an_offset() -> None:
    assert parse_time("2026-12-01T22:41:13Z") == datetime(2026, 12, 1, 22, 41, 13, tzinfo=UTC)
    assert parse_time("2026-12-01t22:41:13.5+02:00") == datetime(
        2026, 12, 1, 22, 41, 13, 500000, tzinfo=timezone(timedelta(hours=2))
    )
    # more fractional digits than Python keeps are cut to microseconds
    assert parse_time("2026-12-01T22:41:13.123456789Z").microsecond == 123456
    assert format_time(T) == "2026-12-01T22:41:13.222039Z"
    assert format_time(T.astimezone(timezone(timedelta(hours=-5)))).endswith("-05:00")


REQUIRED = {"specversion": "1.0", "id": "e", "source": "/s", "type": "t"}


@pytest.mark.parametrize(
    ("doc", "names"),
    [
        ({**REQUIRED, "specversion": "0.3"}, "specversion must be '1.0'"),
        ({k: v for k, v in REQUIRED.items() if k != "specversion"}, "specversion is missing"),
        ({k: v for k, v in REQUIRED.items() if k != "id"}, "id is missing"),
        ({k: v for k, v in REQUIRED.items() if k != "source"}, "source is missing"),
        ({k: v for k, v in REQUIRED.items() if k != "type"}, "type is missing"),
        ({**REQUIRED, "id": ""}, "id must be a non-empty string"),
        ({**REQUIRED, "type": 7}, "type must be a non-empty string"),
        ({**REQUIRED, "subject": ""}, "subject must be a non-empty string"),
        ({**REQUIRED, "time": "2026-12-01"}, "time must be an RFC 3339 timestamp"),
        ({**REQUIRED, "time": "2026-12-01T22:41:13"}, "time must be an RFC 3339 timestamp"),
        ({**REQUIRED, "time": "2026-13-01T22:41:13Z"}, "time is not a valid time"),
        ({**REQUIRED, "recordedtime": 17}, "recordedtime must be an RFC 3339 timestamp"),
        ({**REQUIRED, "traceparent": "abc"}, "traceparent must be a W3C trace context"),
        ({**REQUIRED, "Tenant": "acme"}, "names are lower-case ASCII letters and digits"),
        ({**REQUIRED, "tenant-id": "acme"}, "names are lower-case ASCII letters and digits"),
        ({**REQUIRED, "tenant": 1.5}, "extension 'tenant' must be"),
        ({**REQUIRED, "tenant": 2**40}, "extension 'tenant' must be"),
        ({**REQUIRED, "tenant": {"a": 1}}, "extension 'tenant' must be"),
        ({**REQUIRED, "data": 1, "data_base64": "AA=="}, "data or data_base64, not both"),
        ({**REQUIRED, "data_base64": "not base64!"}, "data_base64 must be a base64 string"),
    ],
)
def test_a_bad_event_is_refused_naming_the_attribute(doc: dict[str, object], names: str) -> None:
    with pytest.raises(InvalidEvent, match=names):
        Event.from_dict(doc)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("{", "a CloudEvent must be JSON"),
        ("[1]", "a CloudEvent is a JSON object"),
        ('"event"', "a CloudEvent is a JSON object"),
    ],
)
def test_text_that_is_not_an_event_is_refused(text: str, names: str) -> None:
    with pytest.raises(InvalidEvent, match=names):
        Event.from_json(text)


def test_a_bad_event_in_a_batch_names_its_index() -> None:
    with pytest.raises(InvalidEvent, match="event 1 of the batch: id is missing"):
        Event.from_json_batch(orjson.dumps([REQUIRED, {**REQUIRED, "id": None}]))
    with pytest.raises(InvalidEvent, match="a CloudEvents batch is a JSON array"):
        Event.from_json_batch(orjson.dumps(REQUIRED))


@pytest.mark.parametrize(
    ("attributes", "names"),
    [
        ({"time": datetime(2026, 1, 1)}, "time must be an aware datetime"),
        ({"extensions": {"correlationid": "x"}}, "is a CloudEvents attribute, not an extension"),
        ({"extensions": {"": "x"}}, "names are lower-case"),
        ({"data": {"a": 1}, "datacontenttype": "text/plain"}, "must be str or bytes"),
    ],
)
def test_the_constructor_validates_too(attributes: dict[str, object], names: str) -> None:
    with pytest.raises(InvalidEvent, match=names):
        Event(id="e", source="/s", type="t", **attributes)  # type: ignore[arg-type]


@pytest.mark.parametrize("data", [{1, 2}, float("nan"), {"x": object()}])
def test_data_that_is_not_json_is_refused_when_written(data: object) -> None:
    event = Event(id="e", source="/s", type="t", data=data)
    with pytest.raises(InvalidEvent, match="cannot be stored as JSON"):
        event.to_json()


def test_invalid_event_is_a_bus_error_and_a_value_error() -> None:
    assert issubclass(InvalidEvent, BusError) and issubclass(InvalidEvent, ValueError)


def test_the_example_in_docs_events_md_runs(capsys: pytest.CaptureFixture[str]) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "events.md").read_text(encoding="utf-8")
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "docs/events.md", "exec"), {})  # our own doc
    out = capsys.readouterr().out.splitlines()
    assert orjson.loads(out[0])["time"] == "2026-12-01T09:30:00Z"
    assert out[1] == "source is missing: every CloudEvent has id, source, type"
