"""``legato workflows graph MODULE:APP NAME``: the real executable draws the example's
workflow from its code, with no database, and refuses bad input in one line."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.acceptance.cli_driver import EXAMPLE_APP, LEGATO, REPO_ROOT

# no database: not run again in the PostgreSQL pass
pytestmark = pytest.mark.sqlite_only


def _graph(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # A database URL no store could open: the command must not need one.
    env["LEGATO_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
    return subprocess.run(
        [str(LEGATO), "workflows", "graph", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _assert_one_line_refusal(result: subprocess.CompletedProcess[str], says: str) -> None:
    assert result.returncode in (1, 2), result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: ") and says in lines[0], result.stderr
    assert all(line.startswith("Hint: ") for line in lines[1:]), result.stderr


def test_graph_of_the_example_is_a_mermaid_flowchart_naming_its_steps_in_order() -> None:
    result = _graph(EXAMPLE_APP, "purchase_course")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("flowchart TD\n")
    text = result.stdout
    positions = [
        text.index('"authorize_payment"'),
        text.index('"undo: refund_payment"'),
        text.index('"create_enrollment"'),
        text.index('"publish purchase.completed"'),
    ]
    assert positions == sorted(positions)


def test_graph_as_json_lists_the_steps_and_their_edges() -> None:
    result = _graph(EXAMPLE_APP, "purchase_course", "--json")

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["workflow"] == "purchase_course"
    steps = [node["label"] for node in data["nodes"] if node["kind"] == "step"]
    assert steps == ["authorize_payment", "create_enrollment"]
    ids = {node["label"]: node["id"] for node in data["nodes"]}
    assert {
        "source": ids["authorize_payment"],
        "target": ids["create_enrollment"],
        "kind": "flow",
        "label": "",
    } in data["edges"]


def test_graph_of_a_file_path_target_works_too() -> None:
    result = _graph("examples/course_purchase/app.py:app", "purchase_course")

    assert result.returncode == 0, result.stderr
    assert '"create_enrollment"' in result.stdout


def test_unknown_workflow_is_one_line_listing_the_apps_workflows() -> None:
    result = _graph(EXAMPLE_APP, "refund_course")

    _assert_one_line_refusal(result, "no workflow 'refund_course'; its workflows: purchase_course")


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("no_such_module:app", "cannot import 'no_such_module'"),
        ("examples.course_purchase.app:nope", "has no attribute 'nope'"),
        ("examples.course_purchase.services:Payments", "is not a legato.App"),
        ("missing.py:app", "there is no such file"),
    ],
)
def test_target_that_cannot_be_loaded_is_refused_as_legato_worker_refuses_it(
    target: str, says: str
) -> None:
    result = _graph(target, "purchase_course")

    _assert_one_line_refusal(result, says)
    assert result.returncode == 2


def test_docs_example_is_what_the_command_prints() -> None:
    command = "$ legato workflows graph examples.course_purchase.app:app purchase_course\n"
    docs = (REPO_ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    shown = docs.split(command, 1)[1].split("```", 1)[0]

    assert shown == _graph(EXAMPLE_APP, "purchase_course").stdout
