"""Every example of docs/expectations.md runs, and what it asserts holds.

The page follows the convention of docs/events.md (see tests/unit/test_docs_events.py):

- A fenced ``python`` block is an example, and runs: a complete script, in a fresh
  namespace, as ``__main__``, in a fresh temporary working directory (so it may write
  ``./courses.db``). ``python no-run`` is shown but not run (prefer none).
- An example that defines ``async def main()`` ends with ``asyncio.run(main())``; one
  that defines ``test_*`` functions (in "Testing") has each called, as pytest would.
- An example shows its point with ``assert``: a failing one fails the test named after
  the block's section and line, and the traceback points at the page's own lines.
- In "Inspecting expectations", each ``$ legato ...`` line followed by output is run on
  the database the section's example writes, 100 columns wide, and must print what the
  page shows (a line ``...`` stands for lines left out). Every ``$ legato`` line of the
  page, output or not (``[--status S]``), must name real commands and options.
"""

from __future__ import annotations

import asyncio
import inspect
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from legato.cli.main import cli
from tests.unit.test_docs_events import FENCE, Block, defines_main, shows
from tests.unit.test_docs_events import legato as cli_lines

DOC = Path(__file__).parents[2] / "docs" / "expectations.md"
NAME = "docs/expectations.md"
INSPECTING = "Inspecting expectations"


def blocks(text: str) -> list[Block]:
    """The page's fenced blocks, in order, each with the ``## `` section it is under."""
    found: list[Block] = []
    section = "(top)"
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            if lines[i].startswith("## "):
                section = lines[i][3:].strip()
            i += 1
            continue
        start = end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        assert end < len(lines), f"{NAME}:{i + 1}: a code block is never closed"
        info = (fence.group(1) + fence.group(2)).strip()
        found.append(Block(section, start + 1, info, "\n".join(lines[start:end]) + "\n"))
        i = end + 1
    return found


TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = blocks(TEXT)
EXAMPLES = [b for b in BLOCKS if b.info.startswith("python")]
CONSOLES = [b for b in BLOCKS if b.info == "console"]


def run_example(block: Block) -> None:
    """Run ``block`` as a script in the current directory, then its ``test_*`` functions."""
    # Blank lines up to the block, so a traceback names the line of the page.
    code = compile("\n" * (block.line - 1) + block.code, str(DOC), "exec")
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(code, namespace)  # our own page
    for name, value in list(namespace.items()):
        if name.startswith("test_") and inspect.isfunction(value):
            result = value()
            if inspect.iscoroutine(result):
                asyncio.run(result)


def sessions(block: Block) -> list[tuple[str, list[str]]]:
    """A console block's ``$ legato ...`` commands, each with the lines shown after it."""
    found: list[tuple[str, list[str]]] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            found.append((line[2:], []))
        else:
            assert found, f"{NAME}:{block.line}: output before any $ command"
            found[-1][1].append(line.rstrip())
    return found


def test_the_page_marks_its_examples_plainly() -> None:
    assert EXAMPLES, f"{NAME} has no python block (did the fence syntax change?)"
    for block in EXAMPLES:
        assert block.info in ("python", "python no-run"), (
            f"{NAME}:{block.line}: fence info {block.info!r}: use python or python no-run"
        )


def test_every_section_has_an_example_that_runs() -> None:
    sections = [line[3:].strip() for line in TEXT.splitlines() if line.startswith("## ")]
    with_examples = {b.section for b in EXAMPLES if b.runs}
    assert sections
    assert [s for s in sections if s not in with_examples] == []


@pytest.mark.parametrize("block", [b for b in EXAMPLES if defines_main(b)], ids=lambda b: b.test_id)
def test_an_example_with_a_main_runs_it(block: Block) -> None:
    assert block.code.rstrip().endswith("asyncio.run(main())"), (
        f"{NAME}:{block.line}: an example that defines main() ends with asyncio.run(main())"
    )


@pytest.mark.parametrize("block", [b for b in EXAMPLES if b.runs], ids=lambda b: b.test_id)
def test_example_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_example(block)


def test_a_false_assertion_in_an_example_fails_its_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    script = Block("Testing", 1, "python", "async def test_x():\n    assert 1 == 2\n")
    with pytest.raises(AssertionError):
        run_example(script)
    async_main = "import asyncio\nasync def main():\n    assert False\nasyncio.run(main())\n"
    with pytest.raises(AssertionError):
        run_example(Block("Testing", 1, "python", async_main))


# -- what the CLI prints -------------------------------------------------------------------


def test_what_the_inspecting_section_shows_is_what_the_cli_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the database the section's example writes (legato.db, in the working dir)
    monkeypatch.chdir(tmp_path)
    [example] = [b for b in EXAMPLES if b.section == INSPECTING and b.runs]
    run_example(example)
    shown_sessions = [
        (block, command, shown)
        for block in CONSOLES
        if block.section == INSPECTING
        for command, shown in sessions(block)
        if shown
    ]
    assert shown_sessions, f"{NAME}: the {INSPECTING} section shows no CLI output"

    # Then every command that shows output prints it
    for block, command, shown in shown_sessions:
        printed = cli_lines(command)
        what = "\n".join(printed)
        assert shows(shown, printed), f"{NAME}:{block.line}: `{command}` prints:\n{what}"


def syntax_lines() -> list[tuple[int, str]]:
    """Every ``$ legato ...`` line of the page, with its block's line."""
    return [(block.line, command) for block in CONSOLES for command, _ in sessions(block)]


@pytest.mark.parametrize(("line", "command"), syntax_lines(), ids=lambda v: str(v))
def test_a_command_on_the_page_names_real_commands_and_options(line: int, command: str) -> None:
    # ``--help`` is eager: it answers once the command and its options are parsed, before
    # placeholders (NAME, S) are checked. An unknown command or option fails first.
    argv = [word.strip("[]") for word in shlex.split(command)[1:] if word.strip("[]")]
    assert shlex.split(command)[0] == "legato", f"{NAME}:{line}: {command}"
    result = CliRunner().invoke(cli, [*argv, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, f"{NAME}:{line}: {command}\n{result.output}"


def test_the_page_names_the_commands_that_show_expectations() -> None:
    commands = {" ".join(shlex.split(command)[:3]) for _, command in syntax_lines()}
    shown = {"expectations list", "expectations show", "flows show", "runs show"}
    assert {f"legato {c}" for c in shown} <= commands
