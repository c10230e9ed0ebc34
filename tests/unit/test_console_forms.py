"""A human task's form in the console, from its JSON Schema, and back to a response."""

from __future__ import annotations

import pytest

from legato.console.forms import WHOLE, fields, response
from legato.console.graphs import label

SCHEMA = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean"},
        "amount": {"type": "integer", "title": "Amount"},
        "rate": {"type": "number"},
        "tier": {"enum": ["gold", 2]},
        "note": {"type": "string", "description": "why"},
        "extra": {"type": "object"},
    },
    "required": ["approved", "amount"],
}


def test_each_property_becomes_an_input_of_its_kind() -> None:
    found = {f.name: f for f in fields(SCHEMA)}
    assert {n: f.kind for n, f in found.items()} == {
        "approved": "boolean",
        "amount": "integer",
        "rate": "number",
        "tier": "choice",
        "note": "text",
        "extra": "json",
    }
    assert found["amount"].title == "Amount" and found["amount"].required
    assert found["tier"].choices == ("gold", 2)
    assert found["note"].description == "why" and not found["note"].required


def test_the_posted_values_become_the_response_of_their_types() -> None:
    posted = {"approved": "true", "amount": "12", "rate": "0.5", "tier": "2", "note": "ok"}
    assert response(fields(SCHEMA), {**posted, "extra": '{"a": [1]}'}) == {
        "approved": True,
        "amount": 12,
        "rate": 0.5,
        "tier": 2,
        "note": "ok",
        "extra": {"a": [1]},
    }
    # An unticked checkbox is not sent: false. An empty optional field is left out.
    assert response(fields(SCHEMA), {"amount": "1", "note": ""}) == {"approved": False, "amount": 1}


@pytest.mark.parametrize(
    ("posted", "message"),
    [
        ({"amount": "twelve"}, "Amount: 'twelve' is not a number"),
        ({"amount": "1", "tier": "silver"}, "tier: choose one of gold, 2"),
        ({"amount": "1", "extra": "{nope"}, "extra: not valid JSON"),
    ],
)
def test_a_value_not_of_its_kind_is_refused(posted: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        response(fields(SCHEMA), posted)


@pytest.mark.parametrize("schema", [None, {"type": "string"}, {"type": "object"}])
def test_a_form_that_is_not_an_object_of_properties_is_one_json_field(schema: object) -> None:
    [only] = fields(schema)  # type: ignore[arg-type]
    assert (only.name, only.kind) == (WHOLE, "json")
    assert response([only], {WHOLE: '["a", 1]'}) == ["a", 1]


def test_mermaid_labels_hold_markup_as_entity_codes() -> None:
    assert label('pay"<b>&') == '"pay#quot;#lt;b#gt;#amp;"'
