"""Drives the real ``legato`` executable: commands, JSON output, worker processes.

Every call runs the console script installed next to ``sys.executable`` as a subprocess;
workers are real ``legato worker`` processes, always stopped with SIGTERM, then SIGKILL.
These helpers drive the CLI specifically, so they live with the acceptance tests rather
than in ``tests/fixtures/``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

REPO_ROOT = Path(__file__).resolve().parents[2]
LEGATO = Path(sys.executable).parent / "legato"
EXAMPLE_APP = "examples.course_purchase.app:app"
SERVED_WORKFLOWS = {
    EXAMPLE_APP: "purchase_course",
    "tests.acceptance.gated_app:app": "gated_order",
}
"""A workflow each test app registers: the worker is ready once it is listed."""
T = TypeVar("T")

TERMINAL = {
    "completed",
    "failed",
    "compensated",
    "compensation_failed",
    "cancelled",
    "blocked",
}


def purchase(number: int, course: str = "python-101") -> dict[str, Any]:
    """A purchase input for ``purchase_course`` (course ``rust-301`` is always full)."""
    return {
        "id": f"p-{number}",
        "learner": f"learner-{number}",
        "course": course,
        "amount_cents": 4900,
    }


@dataclass
class Cli:
    """Runs ``legato`` against one database (given through ``LEGATO_DATABASE_URL``)."""

    database: str
    cwd: Path = REPO_ROOT

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LEGATO_DATABASE_URL"] = self.database
        # Wide, plain output: Rich wraps at 80 columns when stdout is not a terminal.
        env["COLUMNS"] = "200"
        env.pop("FORCE_COLOR", None)
        return env

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``legato *args``; never raises on a non-zero exit code."""
        return subprocess.run(
            [str(LEGATO), *args],
            cwd=self.cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str) -> str:
        """Run ``legato *args``, require exit code 0, return stdout."""
        result = self.run(*args)
        assert result.returncode == 0, (
            f"legato {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        assert "Traceback" not in result.stderr
        return result.stdout

    def json(self, *args: str) -> Any:
        """Run ``legato *args --json`` and parse its stdout."""
        return orjson.loads(self.ok(*args, "--json"))

    def wait_for_status(
        self, run_id: str, statuses: set[str] = TERMINAL, timeout: float = 30
    ) -> dict[str, Any]:
        """Poll ``legato runs show --json`` until the run is in one of ``statuses``."""
        deadline = time.monotonic() + timeout
        while True:
            shown: dict[str, Any] = self.json("runs", "show", run_id)
            if shown["status"] in statuses:
                return shown
            assert time.monotonic() < deadline, f"run {run_id} still {shown['status']}"
            time.sleep(0.1)

    def wait_for(self, found: Callable[[], T], what: str, timeout: float = 30) -> T:
        """Call ``found`` (it runs commands) until it returns something true; return that."""
        deadline = time.monotonic() + timeout
        while not (value := found()):
            assert time.monotonic() < deadline, f"still waiting for {what}"
            time.sleep(0.1)
        return value


@dataclass
class Workers:
    """Starts ``legato worker`` processes and guarantees they are stopped."""

    cli: Cli
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, target: str = EXAMPLE_APP) -> subprocess.Popen[bytes]:
        """Start a worker (``--database`` given explicitly) and wait until it serves."""
        log_path = self.logs / f"worker-{len(self.processes) + 1}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(LEGATO), "worker", target, "--database", self.cli.database],
                cwd=self.cli.cwd,
                env=self.cli.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        deadline = time.monotonic() + 30
        # A worker registers its app's workflows once its engine has started (another
        # worker may have registered others on the same database already).
        while not self._registered(target):
            assert process.poll() is None, f"worker died:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"worker not ready:\n{log_path.read_text()}"
            time.sleep(0.1)
        return process

    def _registered(self, target: str) -> bool:
        expected = SERVED_WORKFLOWS.get(target)
        listed = self.cli.run("workflows", "list", "--json")
        if listed.returncode != 0 and "no Legato database" in listed.stderr:
            return False  # the worker has not created the database yet
        assert listed.returncode == 0, listed.stderr
        names = {w["name"] for w in orjson.loads(listed.stdout)}
        return expected in names if expected else bool(names)

    @staticmethod
    def stop(process: subprocess.Popen[bytes]) -> None:
        """SIGTERM (graceful stop), then SIGKILL if it does not exit in time."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self) -> None:
        """Stop every worker this object started."""
        for process in self.processes:
            self.stop(process)


def sqlite_url(path: Path) -> str:
    """``sqlite:////abs/path.db`` for an absolute path."""
    return f"sqlite:///{path}"


@dataclass
class ScriptDatabase:
    """Where an example's ``main.py`` keeps its runs in this test, and the environment
    that makes it so: its own SQLite file in its working directory (the script's default,
    ``LEGATO_DATABASE_URL`` unset), or in the PostgreSQL pass a fresh schema it is given
    through ``LEGATO_DATABASE_URL``."""

    url: str
    env: dict[str, str]


def script_database(directory: Path, default_file: str) -> ScriptDatabase:
    """The database of an example script run in ``directory`` (``default_file`` is the
    file name the script uses when ``LEGATO_DATABASE_URL`` is unset)."""
    from tests.fixtures.db import ON_POSTGRES, fresh_database

    env = {k: v for k, v in os.environ.items() if k != "LEGATO_DATABASE_URL"}
    if not ON_POSTGRES:
        return ScriptDatabase(sqlite_url(directory / default_file), env)
    url = fresh_database(directory)
    return ScriptDatabase(url, {**env, "LEGATO_DATABASE_URL": url})
