"""docs/operations.md is true: its Python example runs (a real SQLite file in a fresh
directory) and asserts what the page says; its command lines name real commands."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from legato.cli.main import cli
from tests.fixtures.docblocks import fenced

DOC = Path(__file__).parents[2] / "docs" / "operations.md"
TEXT = DOC.read_text(encoding="utf-8")


def blocks(kind: str) -> list[tuple[int, str]]:
    return fenced(TEXT, kind)


@pytest.mark.parametrize(("line", "code"), blocks("python"), ids=lambda v: str(v)[:12])
def test_the_example_runs(
    line: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile("\n" * (line - 1) + code, str(DOC), "exec"), {"__name__": "__main__"})


def command_lines() -> list[list[str]]:
    lines = [line.split("#")[0].strip() for _, code in blocks("bash") for line in code.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("legato ")]


@pytest.mark.parametrize("args", command_lines(), ids=" ".join)
def test_every_command_line_names_real_commands_and_options(args: list[str]) -> None:
    words = [a for a in args if not a.startswith("-")]
    # The command path is the leading words that are commands; --help of it must work
    # and list every option the line uses.
    path = words[:2] if words[0] == "runs" else words[:1]
    shown = CliRunner().invoke(cli, [*path, "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    for option in (a.split("=")[0] for a in args if a.startswith("--")):
        assert option in shown.output, (path, option)
