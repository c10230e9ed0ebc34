"""Every example of docs/events.md runs, and what it asserts holds.

The page's convention, which these tests enforce:

- A fenced block whose info string is ``python`` is an example, and runs. A block
  marked ``python no-run`` is shown but not run (the page has none today; prefer none).
  Shell sessions and printed output go in ``console`` or ``text`` blocks.
- Each example is a complete script: it runs in a fresh namespace, as ``__main__``, in
  a fresh temporary working directory, so it may write files there (``./shop.db``).
- An example that defines ``async def main()`` ends with ``asyncio.run(main())``, like
  a script you would run; a test checks that it does, so no ``main`` is left unrun.
- An example that defines ``test_*`` functions (a test module, in "Testing") has each
  one called, the ``async`` ones with ``asyncio.run``, as pytest would.
- An example shows its point with ``assert``: if the page says something the code does
  not do, the assertion fails, and so does the test, named after the block's section and
  line. Tracebacks point at the page's own lines.
- What the CLI prints, in the "Flows" section, is real: its ``console`` blocks (``$
  legato ...`` lines, each followed by what it prints; a line ``...`` stands for lines
  left out) and its ``mermaid`` chart are compared with what the CLI prints, 100 columns
  wide, on the database the section's example writes. Elsewhere a ``$ legato`` line may
  show a command's syntax (``[--rate N/s]``); it must name real commands and options.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from legato.cli.main import cli

DOC = Path(__file__).parents[2] / "docs" / "events.md"
FENCE = re.compile(r"^```(\S*)(.*)$")
FLOWS = "Flows: what happened, on the command line"
ELIDED = "..."


@dataclass(frozen=True)
class Block:
    """One fenced code block of the page."""

    section: str  # the ``## `` heading it is under
    line: int  # the line of its first code line, 1-based
    info: str  # the fence's info string: ``python``, ``python no-run``, ``console``
    code: str

    @property
    def runs(self) -> bool:
        return self.info == "python"

    @property
    def test_id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"{slug}-line-{self.line}"


def blocks(text: str) -> list[Block]:
    """The page's fenced blocks, in order."""
    found: list[Block] = []
    section = "(top)"
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line)
        if fence is None:
            if line.startswith("## "):
                section = line[3:].strip()
            i += 1
            continue
        info = (fence.group(1) + fence.group(2)).strip()
        start = i + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        assert end < len(lines), f"docs/events.md:{i + 1}: a code block is never closed"
        found.append(Block(section, start + 1, info, "\n".join(lines[start:end]) + "\n"))
        i = end + 1
    return found


BLOCKS = blocks(DOC.read_text(encoding="utf-8"))
EXAMPLES = [b for b in BLOCKS if b.info.startswith("python")]


def defines_main(block: Block) -> bool:
    return re.search(r"^async def main\(\)", block.code, re.MULTILINE) is not None


def test_the_page_marks_its_examples_plainly() -> None:
    assert EXAMPLES, "docs/events.md has no python block (did the fence syntax change?)"
    for block in EXAMPLES:
        assert block.info in ("python", "python no-run"), (
            f"docs/events.md:{block.line}: fence info {block.info!r}: use python or python no-run"
        )


def test_every_section_has_an_example_that_runs() -> None:
    sections = [
        line[3:].strip()
        for line in DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    ]
    with_examples = {b.section for b in EXAMPLES if b.runs}
    assert [s for s in sections if s not in with_examples] == []


@pytest.mark.parametrize("block", [b for b in EXAMPLES if defines_main(b)], ids=lambda b: b.test_id)
def test_an_example_with_a_main_runs_it(block: Block) -> None:
    assert block.code.rstrip().endswith("asyncio.run(main())"), (
        f"docs/events.md:{block.line}: an example that defines main() ends with asyncio.run(main())"
    )


@pytest.mark.parametrize("block", [b for b in EXAMPLES if b.runs], ids=lambda b: b.test_id)
def test_example_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # Blank lines up to the block, so a traceback names the line of the page.
    code = compile("\n" * (block.line - 1) + block.code, str(DOC), "exec")
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(code, namespace)  # our own page
    for name, value in list(namespace.items()):
        if name.startswith("test_") and inspect.isfunction(value):
            result = value()
            if inspect.iscoroutine(result):
                asyncio.run(result)


# -- what the CLI prints -------------------------------------------------------------------


def sessions(block: Block) -> list[tuple[str, list[str]]]:
    """A console block's ``$ legato ...`` commands, each with the lines shown after it."""
    found: list[tuple[str, list[str]]] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            found.append((line[2:], []))
        else:
            assert found, f"docs/events.md:{block.line}: output before any $ command"
            found[-1][1].append(line.rstrip())
    return found


def legato(command: str) -> list[str]:
    """Run a ``legato ...`` command in this process, 100 columns wide; its stdout lines."""
    argv = shlex.split(command)
    assert argv[0] == "legato", command
    result = CliRunner().invoke(cli, argv[1:], env={"COLUMNS": "100"})
    assert result.exit_code == 0, f"{command} exited {result.exit_code}:\n{result.output}"
    return [line.rstrip() for line in result.stdout.rstrip("\n").splitlines()]


def shows(shown: list[str], printed: list[str]) -> bool:
    """True if ``shown`` is ``printed`` with runs of lines replaced by ``...`` lines."""
    parts = [r"(?:[^\n]*\n)*?" if line == ELIDED else re.escape(line) + r"\n" for line in shown]
    return re.fullmatch("".join(parts), "".join(line + "\n" for line in printed)) is not None


def test_shows_matches_output_with_lines_left_out() -> None:
    printed = ["{", '  "a": 1,', '  "b": 2', "}"]
    assert shows(printed, printed)
    assert shows(["{", ELIDED, "}"], printed)
    assert shows(["{", '  "a": 1,', ELIDED], printed)
    assert not shows(["{", '  "b": 2', ELIDED], printed)  # a gap needs its ...
    assert not shows(["{", '  "a": 1,'], printed)  # so does an end cut short


def test_what_the_flows_section_shows_is_what_the_cli_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the database the section's example writes (legato.db, in the working dir)
    monkeypatch.chdir(tmp_path)
    [example] = [b for b in EXAMPLES if b.section == FLOWS and b.runs]
    exec(compile("\n" * (example.line - 1) + example.code, str(DOC), "exec"), {})  # our page
    consoles = [b for b in BLOCKS if b.section == FLOWS and b.info == "console"]
    [chart] = [b for b in BLOCKS if b.section == FLOWS and b.info == "mermaid"]
    assert consoles

    # Then every command prints what the page shows
    for block in consoles:
        for command, shown in sessions(block):
            assert shown, f"docs/events.md:{block.line}: {command} shows no output"
            printed = legato(command)
            assert shows(shown, printed), (
                f"docs/events.md:{block.line}: `{command}` prints:\n" + "\n".join(printed)
            )
    # and the chart is what --mermaid prints for its correlation id (its first line says)
    correlation = chart.code.splitlines()[0].removeprefix("%% flow of correlation id ")
    printed = legato(f"legato flows show {shlex.quote(correlation)} --mermaid")
    assert chart.code.rstrip("\n").splitlines() == printed


def syntax_lines() -> list[tuple[int, str]]:
    """Every ``$ legato ...`` line of the page, with its block's line."""
    return [
        (block.line, command)
        for block in BLOCKS
        if block.info == "console"
        for command, _ in sessions(block)
    ]


@pytest.mark.parametrize(("line", "command"), syntax_lines(), ids=lambda v: str(v))
def test_a_command_on_the_page_names_real_commands_and_options(line: int, command: str) -> None:
    # ``--help`` is eager: it answers once the command and its options are parsed, before
    # placeholders (EVENT_ID, NAME) are checked. An unknown command or option fails first.
    argv = [word.strip("[]") for word in shlex.split(command)[1:] if word.strip("[]")]
    result = CliRunner().invoke(cli, [*argv, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, f"docs/events.md:{line}: {command}\n{result.output}"
