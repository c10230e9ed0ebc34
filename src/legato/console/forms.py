"""A human task's form, from its JSON Schema: one input per property of an object schema
(a checkbox for a boolean, a number field for a number or integer, a list for an enum, a
text field for a string, a JSON text area for anything else), and back from the posted
values to the response the task is completed with (then checked against the schema by
``complete_task``, as every response is)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Field:
    """One input: the property's ``name``, ``kind`` (``boolean``, ``number``,
    ``integer``, ``choice``, ``text`` or ``json``), its title and description, the
    choices of an enum, and whether the schema requires it."""

    name: str
    kind: str
    title: str
    description: str | None = None
    choices: tuple[Any, ...] = ()
    required: bool = False


WHOLE = "response"
"""The one field of a form whose schema is not an object with properties: JSON."""


def fields(schema: dict[str, Any] | None) -> list[Field]:
    """The inputs of a task whose form is ``schema`` (None: any JSON response)."""
    properties = (
        (schema or {}).get("properties") if (schema or {}).get("type") == "object" else None
    )
    if not isinstance(properties, dict) or not properties:
        return [Field(WHOLE, "json", "Response (JSON)", required=True)]
    required = set((schema or {}).get("required", ()))
    found = []
    for name, spec in properties.items():
        spec = spec if isinstance(spec, dict) else {}
        declared = str(spec.get("type"))
        kind = {"boolean": "boolean", "number": "number", "integer": "integer"}.get(
            declared, "text" if declared == "string" else "json"
        )
        if isinstance(spec.get("enum"), list):
            kind = "choice"
        found.append(
            Field(
                str(name),
                kind,
                str(spec.get("title", name)),
                spec.get("description"),
                tuple(spec.get("enum", ())),
                name in required,
            )
        )
    return found


def response(inputs: list[Field], form: dict[str, str]) -> Any:
    """The response the posted ``form`` gives; ``ValueError`` for a value that is not
    of its field's kind (a number field holding words, JSON that does not parse)."""
    if len(inputs) == 1 and inputs[0].name == WHOLE:
        return _json(form.get(WHOLE, ""), WHOLE)
    answer: dict[str, Any] = {}
    for field in inputs:
        raw = form.get(field.name)
        if field.kind == "boolean":
            answer[field.name] = raw is not None  # a checkbox is sent only when ticked
            continue
        if raw is None or (raw == "" and not field.required):
            continue
        if field.kind == "integer":
            answer[field.name] = _number(raw, field.title, int)
        elif field.kind == "number":
            answer[field.name] = _number(raw, field.title, float)
        elif field.kind == "choice":
            by_text = {str(c): c for c in field.choices}
            if raw not in by_text:
                raise ValueError(f"{field.title}: choose one of {', '.join(by_text)}")
            answer[field.name] = by_text[raw]
        elif field.kind == "json":
            answer[field.name] = _json(raw, field.title)
        else:
            answer[field.name] = raw
    return answer


def _number(raw: str, title: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{title}: {raw!r} is not a number") from None


def _json(raw: str, title: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValueError(f"{title}: not valid JSON") from None
