"""Every example of docs/alerting.md runs, and what it asserts holds.

The page follows docs/events.md's convention (see tests/unit/test_docs_events.py, whose
parsing and CLI helpers these tests use): every ``python`` block is a complete script,
run as ``__main__`` in a fresh working directory; every ``## `` section has one; an
example with a ``main()`` ends with ``asyncio.run(main())``. Also:

- The webhook example posts over real HTTP, to the stand-in server it starts on
  127.0.0.1; it runs once (a module fixture), and this test checks what that server
  recorded: Slack's JSON, once per alert.
- What ``legato alerts list`` prints, in the "Reading alerts" section, is real: each
  ``$ legato ...`` line of its ``console`` blocks, run in this process 150 columns wide
  (in UTC) on the database the section's example writes, prints what the page shows (a
  line ``...`` would stand for lines left out).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from legato.cli.main import cli
from tests.unit.test_docs_events import Block, blocks, defines_main, sessions, shows

DOC = Path(__file__).parents[2] / "docs" / "alerting.md"
READING = "Reading alerts: `legato alerts list` and `list_alerts`"
WEBHOOK = "Posting alerts to Slack or any webhook"

BLOCKS = blocks(DOC.read_text(encoding="utf-8"))
EXAMPLES = [b for b in BLOCKS if b.info == "python"]


def run_example(block: Block) -> dict[str, Any]:
    """Run one example as a script (tracebacks name the page's lines); its namespace."""
    code = compile("\n" * (block.line - 1) + block.code, str(DOC), "exec")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(code, namespace)  # our own page
    return namespace


@pytest.fixture
def utc() -> Iterator[None]:
    """Local time is UTC while the test runs: the CLI prints times in local time."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "UTC")
        time.tzset()
        yield
    time.tzset()


def test_every_block_is_a_python_script_or_a_console_session() -> None:
    assert EXAMPLES, "docs/alerting.md has no python block (did the fence syntax change?)"
    assert {b.info for b in BLOCKS} == {"python", "console"}


def test_every_section_has_an_example_that_runs() -> None:
    sections = [
        line[3:].strip()
        for line in DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    ]
    assert [s for s in sections if s not in {b.section for b in EXAMPLES}] == []


@pytest.mark.parametrize("block", [b for b in EXAMPLES if defines_main(b)], ids=lambda b: b.test_id)
def test_an_example_with_a_main_runs_it(block: Block) -> None:
    assert block.code.rstrip().endswith("asyncio.run(main())"), (
        f"docs/alerting.md:{block.line}: an example that defines main() ends with "
        "asyncio.run(main())"
    )


@pytest.mark.parametrize(
    "block", [b for b in EXAMPLES if b.section != WEBHOOK], ids=lambda b: b.test_id
)
def test_example_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = run_example(block)
    for name, value in list(namespace.items()):
        if name.startswith("test_") and inspect.isfunction(value):
            result = value()
            if inspect.iscoroutine(result):
                asyncio.run(result)


# -- the webhook ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def webhook_example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The webhook example, run once (it takes most of a second): its namespace."""
    [example] = [b for b in EXAMPLES if b.section == WEBHOOK]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("webhook"))
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            patch.delenv(name, raising=False)  # httpx reads them; the stand-in is local
        return run_example(example)


def test_the_webhook_received_slack_json_once_per_alert(webhook_example: dict[str, Any]) -> None:
    # Given the webhook example, run: its stand-in server recorded every POST it got
    posts: list[tuple[str, int, dict[str, Any]]] = webhook_example["SlackStandIn"].posts

    accepted = [(key, body) for key, status, body in posts if status == 200]
    # Then each alert event arrived once: one accepted POST per idempotency key
    keys = [key for key, _ in accepted]
    assert len(keys) == len(set(keys)) == 3
    assert all(re.fullmatch(r"alerts_to_slack:/legato/alerts:[0-9a-f-]{36}", k) for k in keys)
    # as Slack's JSON: a text, and blocks of a section and its context
    for _, body in accepted:
        assert set(body) == {"text", "blocks"}
        assert isinstance(body["text"], str) and body["text"]
        assert [b["type"] for b in body["blocks"]] == ["section", "context"]
        assert body["blocks"][0]["text"]["type"] == "mrkdwn"
    headlines = [re.match(r":\w+: (\w+) (\w+): ", body["text"]) for _, body in accepted]
    assert [h and h.groups() for h in headlines] == [
        ("dead_letter", "raised"),
        ("dead_letter", "resolved"),
        ("unrouted_event", "raised"),
    ]
    # and every failed POST was an attempt of one that was accepted later
    assert {key for key, status, _ in posts if status != 200} <= set(keys)


def test_slack_messages_escape_what_slack_would_read_as_markup(
    webhook_example: dict[str, Any],
) -> None:
    event = webhook_example["legato"].Event.new(
        "legato.alert.raised",
        {
            "alert_id": "stuck_run:r-1",
            "kind": "stuck_run",
            "subject": "r-1",
            "summary": "run r-1 (jobs.<locals>.sync & co, running) has made no progress",
            "details": {},
            "times": 2,
        },
        source="/legato/alerts",
    )

    message = webhook_example["slack_message"](event)

    assert "jobs.&lt;locals&gt;.sync &amp; co" in message["text"]
    assert "<" not in message["blocks"][0]["text"]["text"]
    assert "raised 2 time(s)" in message["blocks"][1]["elements"][0]["text"]


# -- what the CLI prints -------------------------------------------------------------------


def legato(command: str) -> list[str]:
    """Run a ``legato ...`` command in this process, 150 columns wide; its stdout lines."""
    argv = shlex.split(command)
    assert argv[0] == "legato", command
    result = CliRunner().invoke(cli, argv[1:], env={"COLUMNS": "150", "FORCE_COLOR": None})
    assert result.exit_code == 0, f"{command} exited {result.exit_code}:\n{result.output}"
    return [line.rstrip() for line in result.stdout.rstrip("\n").splitlines()]


def test_what_the_reading_section_shows_is_what_the_cli_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, utc: None
) -> None:
    # Given the database the section's example writes (legato.db, in the working dir)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEGATO_DATABASE_URL", raising=False)
    [example] = [b for b in EXAMPLES if b.section == READING]
    run_example(example)
    consoles = [b for b in BLOCKS if b.section == READING and b.info == "console"]
    assert len(consoles) == 2

    # Then every command prints what the page shows
    for block in consoles:
        for command, shown in sessions(block):
            assert shown, f"docs/alerting.md:{block.line}: {command} shows no output"
            printed = legato(command)
            assert shows(shown, printed), (
                f"docs/alerting.md:{block.line}: `{command}` prints:\n" + "\n".join(printed)
            )
