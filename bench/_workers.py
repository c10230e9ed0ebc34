"""Worker processes for the benchmarks: ``legato worker`` started N times on one database.

Imported as ``_workers`` (scripts run from bench/). Each worker serves ``TARGET``, the
bench script's module-level ``app``; the bench starts runs through a client and reads
what happened from the database.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


def legato_command() -> list[str]:
    script = Path(sys.executable).with_name("legato")
    return [str(script)] if script.exists() else [sys.executable, "-m", "legato"]


class Workers:
    """N ``legato worker`` processes serving ``target`` on ``url`` (stopped on exit)."""

    def __init__(
        self, target: str, url: str, n: int, *args: str, env: dict[str, str] | None = None
    ):
        self.target, self.url, self.n, self.args = target, url, n, args
        self.env = {**os.environ, **(env or {}), "PYTHONPATH": str(BENCH)}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs = Path(tempfile.mkdtemp(prefix="legato-bench-workers-"))

    def start(
        self, count: int | None = None, *, prefix: list[str] | None = None
    ) -> list[subprocess.Popen[bytes]]:
        started = []
        for _ in range(self.n if count is None else count):
            log = (self.logs / f"worker-{len(self.procs)}.log").open("wb")
            proc = subprocess.Popen(
                [
                    *(prefix or []),
                    *legato_command(),
                    "worker",
                    self.target,
                    "--database",
                    self.url,
                    "--log-level",
                    "WARNING",
                    *self.args,
                ],
                cwd=BENCH,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
            self.procs.append(proc)
            started.append(proc)
        return started

    def __enter__(self) -> "Workers":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def check(self) -> None:
        for i, proc in enumerate(self.procs):
            code = proc.poll()
            if code is not None and code != -signal.SIGKILL:
                tail = (self.logs / f"worker-{i}.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"worker {i} exited with {code}:\n{tail}")


def fresh_schema_url(base: str) -> str:
    """``base`` (a postgresql:// URL) with a new schema, migrated and dropped when the
    bench exits; or ``base`` itself."""
    if not base.startswith(("postgresql://", "postgres://")) or "schema=" in base:
        return base
    name = f"bench_{os.getpid()}_{int(time.time())}"
    url = f"{base}{'&' if '?' in base else '?'}schema={name}"
    from legato.storage import parse_database_url
    from legato.storage.admin import migrate_database

    migrate_database(url)
    conninfo = parse_database_url(url).conninfo

    def drop() -> None:
        import psycopg

        with contextlib.suppress(psycopg.Error), psycopg.connect(conninfo, autocommit=True) as c:
            c.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")

    atexit.register(drop)
    return url


def commits(url: str) -> int | None:
    """The database's committed transactions so far (PostgreSQL), for commits/s."""
    if not url.startswith(("postgresql://", "postgres://")):
        return None
    import psycopg

    from legato.storage import parse_database_url

    conninfo = parse_database_url(url).conninfo
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else None
