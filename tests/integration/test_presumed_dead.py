"""A worker presumed dead that comes back (issue 7), with real processes on one database
(a SQLite file; a PostgreSQL schema in the PostgreSQL pass).

Worker A stalls past its 1 s lease (SIGSTOP, or a step blocking its event loop with
``time.sleep``) while worker B runs: B removes A's row and takes A's runs. Then A wakes.
It must learn that it was presumed dead and register again before it claims; so when A
is later SIGKILLed holding new runs, B releases them like any dead worker's, and every
run completes. Before the fix, A went on heartbeating into a row that no longer existed
and claimed runs under that id: once A was killed, those runs stayed ``running`` under an
owner no worker row named, and nobody ever released them.

The database is read directly (never through the engine), so what the test sees is what
was committed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.db import fresh_database
from tests.integration.direct_db import DirectDb

import legato
from legato.storage import parse_database_url
from legato.testing.crash import WorkerProcess

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_TARGET = "tests.integration.presumed_dead_app:app"
WORKFLOW = "presumed_dead_flow"
CONCURRENCY = 10  # each worker's max_concurrent_runs (presumed_dead_app.CONCURRENCY)
WAIT_S = 30.0
FINISH_S = 90.0


class Env:
    """The runs database, read directly, and the worker processes serving it."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = fresh_database(tmp_path, "runs.db")
        self.worker_env = {
            "PRESUMED_DEAD_STEP_S": "1.0",
            "PRESUMED_DEAD_MARKER": str(tmp_path / "blocked-once"),
        }
        self.workers: list[WorkerProcess] = []
        self.db = DirectDb(self.url)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.db.rows(sql, params)

    def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(APP_TARGET, self.url, cwd=str(REPO_ROOT), env=self.worker_env)
        self.workers.append(worker.start())
        worker.wait_ready(WORKFLOW)
        self.wait_until(lambda: self.ids_of(worker) != [], f"worker {pid(worker)} to register")
        return worker

    def ids_of(self, worker: WorkerProcess) -> list[str]:
        """The worker ids registered now by that process."""
        return [
            r[0] for r in self.rows("SELECT worker_id FROM workers WHERE pid = ?", (pid(worker),))
        ]

    def owners(self, prefix: str) -> dict[str, str | None]:
        """Owner of every run whose id starts with ``prefix``."""
        return dict(
            self.rows("SELECT run_id, owner FROM runs WHERE run_id LIKE ?", (f"{prefix}%",))
        )

    def stranded(self) -> list[tuple[str, str, str]]:
        """Unfinished runs owned by an id that no worker row names: nobody will release them."""
        return self.rows(  # type: ignore[return-value]
            "SELECT run_id, status, owner FROM runs WHERE owner IS NOT NULL "
            "AND status NOT IN ('completed', 'failed', 'compensated', 'compensation_failed', "
            "'cancelled', 'blocked') AND owner NOT IN (SELECT worker_id FROM workers)"
        )

    def progress(self) -> str:
        return (
            f"runs by status: {self.rows('SELECT status, count(*) FROM runs GROUP BY status')}; "
            f"workers: {self.rows('SELECT worker_id, pid FROM workers')}; "
            f"stranded: {self.stranded()}"
        )

    def wait_until(self, condition: Callable[[], bool], what: str, limit: float = WAIT_S) -> None:
        deadline = time.monotonic() + limit
        while not condition():
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- worker {pid(w)} ---\n{w.log[-3000:]}" for w in self.workers)
                pytest.fail(
                    f"timed out after {limit:.0f}s waiting for {what}; {self.progress()}\n{logs}",
                    pytrace=False,
                )
            time.sleep(0.02)

    def close(self) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid(worker), signal.SIGCONT)  # a stopped process ignores SIGTERM
            worker.__exit__(None, None, None)  # stops it and closes its log file
        self.db.close()


def pid(worker: WorkerProcess) -> int:
    assert worker.process is not None
    return worker.process.pid


def stop_outside_a_write(env: Env, worker: WorkerProcess) -> None:
    """SIGSTOP ``worker`` at a moment it holds no write transaction.

    SQLite has one write lock per file: a process frozen inside a write transaction keeps
    every other writer waiting until it thaws, and no lease can take that lock from it.
    On PostgreSQL the server ends a transaction left idle for seconds, and with it the
    worker's connection: a different story. This test is about a worker frozen between
    writes, so when the stop lands inside one it thaws the worker for a moment and stops
    it again.
    """
    if env.db.postgres:
        stop_outside_a_postgres_transaction(env, worker)
        return
    assert env.db.path is not None
    probe = sqlite3.connect(
        f"file:{env.db.path}?mode=rw", uri=True, isolation_level=None, timeout=0.2
    )
    try:
        for _ in range(200):
            os.kill(pid(worker), signal.SIGSTOP)
            try:
                probe.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:  # stopped holding the lock: let it finish
                os.kill(pid(worker), signal.SIGCONT)
                time.sleep(0.01)
                continue
            probe.execute("ROLLBACK")
            return
        pytest.fail("could not stop the worker outside a write transaction", pytrace=False)
    finally:
        probe.close()


IN_A_TRANSACTION_HERE = """
SELECT count(*) FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'
  AND pid IN (SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
              JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ?)
"""
"""Sessions inside a transaction that has touched the test's schema: only the stopped
worker's can be (nothing else writes there then; other tests use other schemas)."""


def stop_outside_a_postgres_transaction(env: Env, worker: WorkerProcess) -> None:
    """``stop_outside_a_write`` on PostgreSQL: a statement in flight at the stop finishes
    on the server; a transaction left open then holds locks in the test's schema."""
    schema = parse_database_url(env.url).options["schema"]
    for _ in range(200):
        os.kill(pid(worker), signal.SIGSTOP)
        time.sleep(0.05)  # a statement sent before the stop completes meanwhile
        if env.rows(IN_A_TRANSACTION_HERE, (schema,)) == [(0,)]:
            return
        os.kill(pid(worker), signal.SIGCONT)  # stopped inside a transaction: let it finish
        time.sleep(0.01)
    pytest.fail("could not stop the worker outside a transaction", pytrace=False)


def kill(worker: WorkerProcess) -> None:
    """SIGKILL and reap: an unreaped zombie would still look alive to the other worker."""
    assert worker.process is not None
    os.kill(pid(worker), signal.SIGKILL)
    worker.process.wait(timeout=30)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    environment = Env(tmp_path)
    try:
        yield environment
    finally:
        environment.close()


def start_runs(env: Env, prefix: str, count: int, **extra: Any) -> list[str]:
    ids = [f"{prefix}-{i:02d}" for i in range(count)]
    with legato.Client(env.url) as client:
        for run_id in ids:
            client.start(WORKFLOW, {"id": run_id, **extra}, run_id=run_id)
    return ids


def held_by(env: Env, worker_ids: list[str], prefix: str) -> list[str]:
    return [r for r, owner in env.owners(prefix).items() if owner in worker_ids]


def come_back_then_die(env: Env, a: WorkerProcess, a_first_id: str, expected: int) -> None:
    """A was presumed dead and is awake again: its later death must strand no run."""
    # When new runs start, A (awake again) claims some of them ...
    start_runs(env, "after", 2 * CONCURRENCY)
    pid_a = f":{pid(a)}:"

    def a_owners() -> set[str]:
        return {owner for owner in env.owners("after").values() if owner and pid_a in owner}

    env.wait_until(lambda: bool(a_owners()), "A to claim some of the new runs")
    claimed_under = a_owners()
    registered = {r[0] for r in env.rows("SELECT worker_id FROM workers")}
    # ... and is SIGKILLed while it holds them
    kill(a)
    # Then every run completes: none is left running under an owner no worker row names
    env.wait_until(
        lambda: env.rows("SELECT count(*) FROM runs WHERE status = 'completed'")[0][0] == expected,
        f"all {expected} runs to complete (none stranded)",
        limit=FINISH_S,
    )
    assert env.stranded() == []
    # And A had learned it was presumed dead: it claimed only under a new, registered id
    assert a_first_id not in claimed_under, "A came back under the id the others removed"
    assert claimed_under <= registered, (claimed_under, registered)
    assert "presumed dead by another worker" in a.log, a.log


def test_worker_stopped_past_its_lease_rejoins_and_its_death_strands_no_run(env: Env) -> None:
    # Given worker A alone, executing runs
    a = env.start_worker()
    [a_first_id] = env.ids_of(a)
    first = start_runs(env, "before", CONCURRENCY)
    env.wait_until(
        lambda: len(held_by(env, [a_first_id], "before")) == CONCURRENCY,
        "A to hold every first run",
    )
    # When A is stopped past its lease while worker B runs
    stop_outside_a_write(env, a)
    env.start_worker()
    # Then B presumes A dead (removes its row) and takes A's runs over
    env.wait_until(lambda: env.ids_of(a) == [], "B to remove A's row")
    env.wait_until(lambda: not held_by(env, [a_first_id], "before"), "A's runs to be released by B")
    # When A wakes up
    os.kill(pid(a), signal.SIGCONT)
    come_back_then_die(env, a, a_first_id, expected=len(first) + 2 * CONCURRENCY)


def test_worker_whose_step_blocks_its_loop_past_the_lease_rejoins_and_strands_no_run(
    env: Env,
) -> None:
    # Given worker A executing runs, one of which blocks A's event loop with time.sleep
    a = env.start_worker()
    [a_first_id] = env.ids_of(a)
    first = start_runs(env, "before", CONCURRENCY - 1)
    env.wait_until(
        lambda: len(held_by(env, [a_first_id], "before")) == CONCURRENCY - 1,
        "A to hold the first runs",
    )
    stall = start_runs(env, "stall", 1, block_s=4.0)
    env.wait_until(lambda: bool(held_by(env, [a_first_id], "stall")), "A to claim the stalling run")
    # When A's loop is blocked past its lease while worker B runs
    env.start_worker()
    # Then B presumes A dead and takes its runs over; A's loop wakes on its own
    env.wait_until(lambda: env.ids_of(a) == [] or env.ids_of(a) != [a_first_id], "B to remove A")
    come_back_then_die(env, a, a_first_id, expected=len(first) + len(stall) + 2 * CONCURRENCY)
