"""docs/http.md is true: its example runs (a real server on 127.0.0.1), and its table of
routes names every route the API serves, with the scope each one needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import legato
from legato.server import create_app
from tests.fixtures.docblocks import fenced

DOC = Path(__file__).parents[2] / "docs" / "http.md"
TEXT = DOC.read_text(encoding="utf-8")


def python_blocks() -> list[tuple[int, str]]:
    return fenced(TEXT, "python")


@pytest.mark.parametrize(("line", "code"), python_blocks(), ids=lambda v: str(v)[:12])
def test_the_example_runs(
    line: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile("\n" * (line - 1) + code, str(DOC), "exec"), {"__name__": "__main__"})


def documented_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the table names (``GET /a``, ``/b`` share a method)."""
    routes = set()
    for row in TEXT.splitlines():
        if not row.startswith("| `"):
            continue
        cell = row.split("|")[1]
        method = None
        for part in re.findall(r"`([^`]+)`", cell):
            words = part.split()
            if len(words) == 2:
                method, path = words
            else:
                path = words[0]
            assert method is not None, row
            routes.add((method, path))
    return routes


def served_routes() -> set[tuple[str, str]]:
    """(method, path) of every operation in the OpenAPI document."""
    paths = create_app(legato.AsyncClient("memory://")).openapi()["paths"]
    return {
        (method.upper(), path.replace(":path}", "}"))
        for path, operations in paths.items()
        for method in operations
    }


def test_the_table_names_every_route_served_and_no_other() -> None:
    documented = {(m, p.replace("{id}", "{task_id}")) for m, p in documented_routes()}
    served = served_routes()
    # The table names a task by {id} and an event by {id}; the app by their own names.
    documented = {
        (m, p.replace("/api/events/{task_id}", "/api/events/{event_id}")) for m, p in documented
    }
    assert served - documented == set(), "served but not in docs/http.md's table"
    assert documented - served == set(), "in docs/http.md's table but not served"
