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
"""

from __future__ import annotations

import asyncio
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

DOC = Path(__file__).parents[2] / "docs" / "events.md"
FENCE = re.compile(r"^```(\S*)(.*)$")


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


EXAMPLES = [b for b in blocks(DOC.read_text(encoding="utf-8")) if b.info.startswith("python")]


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
