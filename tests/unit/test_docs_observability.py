"""Every example of docs/observability.md runs, and what it asserts holds.

The page follows the convention of docs/events.md (see tests/unit/test_docs_events.py,
whose block parser this module reuses): a ``python`` block is a complete script, run as
``__main__`` in a fresh namespace and a fresh temporary working directory; one that
defines ``async def main()`` ends with ``asyncio.run(main())``; it shows its point with
``assert``, and a traceback points at the page's own lines. Besides:

- Every section has an example that runs, except the two that present files of deploy/
  (the alert rules and the dashboard; tests/unit/test_deploy.py checks those files).
- A ``console`` block holds ``$ ...`` commands, each followed by what it prints. A
  ``legato`` command must name real commands and options (it is not run: a worker runs
  until stopped). ``$ cd DIR`` (relative to the repository) sets where the commands after
  it run, and a ``promtool`` command is run there: it must print what the page shows. No
  other command may appear, since nothing here could check it.
- A ``yaml`` block that starts with ``# prometheus.yml`` is a Prometheus configuration:
  with deploy/prometheus/legato-rules.yml beside it, ``promtool check config`` accepts it.
- The metrics table names each metric of ``METRICS`` once, with a type that matches it
  and, for counters and histograms, the labels it has.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import Counter, Histogram
from typer.testing import CliRunner

from legato.cli.main import cli
from legato.observability.metrics import METRICS, Metrics
from tests.unit.test_docs_events import Block, blocks, defines_main, sessions, shows

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "observability.md"
RULES = ROOT / "deploy" / "prometheus" / "legato-rules.yml"
BLOCKS = blocks(DOC.read_text(encoding="utf-8"))
EXAMPLES = [b for b in BLOCKS if b.info.startswith("python")]
CONSOLES = [b for b in BLOCKS if b.info == "console"]
WITHOUT_EXAMPLES = {"Alert rules", "The Grafana dashboard"}  # files of deploy/, shown


def promtool() -> str:
    found = shutil.which("promtool")
    assert found is not None, (
        "promtool is not installed: apt-get install prometheus (.ci/run installs it)"
    )
    return found


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Put back the handlers and levels that an example sets on loggers (``shop``)."""
    loggers = [logging.getLogger(), *map(logging.getLogger, list(logging.root.manager.loggerDict))]
    saved = [(lg, list(lg.handlers), lg.level) for lg in loggers]
    yield
    for lg, handlers, level in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)


def test_the_page_marks_its_examples_plainly() -> None:
    assert EXAMPLES, "docs/observability.md has no python block (did the fence syntax change?)"
    for block in EXAMPLES:
        assert block.info in ("python", "python no-run"), (
            f"docs/observability.md:{block.line}: fence info {block.info!r}: "
            "use python or python no-run"
        )


def test_every_section_but_the_deploy_files_has_an_example_that_runs() -> None:
    sections = [
        line[3:].strip()
        for line in DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    ]
    assert set(sections) >= WITHOUT_EXAMPLES
    with_examples = {b.section for b in EXAMPLES if b.runs}
    assert [s for s in sections if s not in with_examples | WITHOUT_EXAMPLES] == []


@pytest.mark.parametrize("block", [b for b in EXAMPLES if defines_main(b)], ids=lambda b: b.test_id)
def test_an_example_with_a_main_runs_it(block: Block) -> None:
    assert block.code.rstrip().endswith("asyncio.run(main())"), (
        f"docs/observability.md:{block.line}: an example that defines main() ends with "
        "asyncio.run(main())"
    )


@pytest.mark.parametrize("block", [b for b in EXAMPLES if b.runs], ids=lambda b: b.test_id)
@pytest.mark.usefixtures("restored_logging")
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


# -- console sessions ----------------------------------------------------------------------


def commands() -> list[tuple[int, str, list[str]]]:
    """Every ``$`` command of the page: its block's line, the command, what it shows."""
    return [
        (block.line, command, shown) for block in CONSOLES for command, shown in sessions(block)
    ]


def test_the_page_shows_only_commands_it_can_check() -> None:
    programs = {shlex.split(command)[0] for _, command, _ in commands()}
    assert programs <= {"legato", "cd", "promtool"}, programs
    assert {"legato", "promtool"} <= programs


@pytest.mark.parametrize(
    ("line", "command"),
    [(line, c) for line, c, _ in commands() if c.startswith("legato ")],
    ids=lambda v: str(v),
)
def test_a_legato_command_on_the_page_names_real_commands_and_options(
    line: int, command: str
) -> None:
    # As in test_docs_events: ``--help`` answers once the command and its options parse,
    # before the placeholders (shop:app) are resolved; an unknown option fails first.
    argv = [word.strip("[]") for word in shlex.split(command)[1:] if word.strip("[]")]
    result = CliRunner().invoke(cli, [*argv, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, f"docs/observability.md:{line}: {command}\n{result.output}"


def without_trailing_blanks(lines: list[str]) -> list[str]:
    while lines and not lines[-1]:
        lines = lines[:-1]
    return lines


def test_the_promtool_sessions_print_what_the_page_shows() -> None:
    tool = promtool()
    ran = 0
    for block in CONSOLES:
        cwd = ROOT
        for command, shown in sessions(block):
            argv = shlex.split(command)
            if argv[0] == "cd":
                cwd = ROOT / argv[1]
                assert cwd.is_dir(), f"docs/observability.md:{block.line}: {command}"
            elif argv[0] == "promtool":
                result = subprocess.run(
                    [tool, *argv[1:]],
                    cwd=cwd,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                assert result.returncode == 0, result.stdout + result.stderr
                printed = without_trailing_blanks(
                    [ln.rstrip() for ln in result.stdout.splitlines()]
                )
                assert shows(without_trailing_blanks(shown), printed), (
                    f"docs/observability.md:{block.line}: `{command}` prints:\n"
                    + "\n".join(printed)
                )
                ran += 1
    assert ran >= 2  # check rules, test rules


def test_the_prometheus_configuration_on_the_page_is_valid(tmp_path: Path) -> None:
    tool = promtool()
    configs = [b for b in BLOCKS if b.info == "yaml" and b.code.startswith("# prometheus.yml\n")]
    assert configs, "docs/observability.md shows no prometheus.yml"
    shutil.copy(RULES, tmp_path / RULES.name)
    for block in configs:
        (tmp_path / "prometheus.yml").write_text(block.code, encoding="utf-8")
        result = subprocess.run(
            [tool, "check", "config", "prometheus.yml"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (
            f"docs/observability.md:{block.line}:\n{result.stdout}{result.stderr}"
        )


# -- the metrics table ---------------------------------------------------------------------

ROW = re.compile(r"^\| `(legato_[a-z_]+)` \| ([^|]+) \| ([^|]+) \|")


def table() -> dict[str, tuple[str, set[str]]]:
    """The metrics table's rows: name -> (type, labels)."""
    rows: dict[str, tuple[str, set[str]]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        row = ROW.match(line)
        if row is None:
            continue
        name, kind, labels = row.group(1), row.group(2).strip(), row.group(3)
        assert name not in rows, f"docs/observability.md: {name} has two rows"
        rows[name] = (kind, set(re.findall(r"`([a-z_]+)`", labels)))
    return rows


def test_the_metrics_table_names_every_metric_once() -> None:
    assert sorted(table()) == sorted(METRICS)


def test_the_metrics_table_gives_each_metric_its_type_and_labels() -> None:
    exported: dict[str, tuple[str, set[str]]] = {}
    for value in vars(Metrics()).values():
        if isinstance(value, Counter | Histogram):
            # prometheus_client keeps a metric's label names on the object only.
            labels = set(value._labelnames)
            if isinstance(value, Counter):
                exported[f"{value._name}_total"] = ("counter", labels)
            else:
                exported[value._name] = ("histogram", labels)
    for name, (kind, labels) in table().items():
        if name in exported:
            assert (kind.split(",")[0], labels) == exported[name], name
        else:
            assert kind.startswith("gauge"), f"{name}: {kind}"
