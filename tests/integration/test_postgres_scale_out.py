"""Scale-out on PostgreSQL with real processes: many ``legato worker``\\s on one database,
killed, stalled, restarted, and the server itself restarted under them.

The workers serve ``tests/integration/crash_app.py`` (a three-step saga whose steps and
compensations count their executions in a SQLite *ledger*). The runs database is read
directly (``PgDb``), never through the engine. What may run twice: only a step in flight
when its worker died or lost its runs; anything recorded must never run again, and every
history holds each step's completion exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.fixtures.db import POSTGRES_URL, new_schema, postgres_url
from tests.integration.test_crash_recovery import (
    REPO_ROOT,
    STEPS,
    TERMINAL,
    WORKFLOW,
    Worker,
    check_history,
    check_ledger,
    effect_counts,
    effects,
    expected_effects,
    history,
    in_flight_count,
    legato_command,
    recorded_completions,
    statuses,
    terminal_count,
    wait_until,
)

import legato
from legato.storage.admin import migrate_database

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

APP_TARGET = "tests.integration.crash_app:app"
START_TIMEOUT_S = 30.0
FINISH_TIMEOUT_S = 90.0  # under pytest's own timeout (120 s), so the message says why


class PgDb:
    """A plain reader on the test's schema (the SQLite-spelled queries of the crash tests
    work: ``?`` becomes ``%s``). Reconnects if the server restarted."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self._conn: psycopg.Connection[Any] | None = None

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        for attempt in range(50):
            try:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    self._conn = psycopg.connect(POSTGRES_URL, autocommit=True)
                    self._conn.execute(f"SET search_path TO {self.schema}")
                return self._conn.execute(sql.replace("?", "%s"), params).fetchall()
            except psycopg.OperationalError:
                self._conn = None
                if attempt == 49:
                    raise
                time.sleep(0.2)  # the server is restarting
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class ScaleEnv:
    """A migrated schema, a ledger, and the workers serving them (killed at teardown)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.schema = new_schema()
        self.url = postgres_url(self.schema)
        migrate_database(self.url)
        # The ledger is a PostgreSQL table too: a worker stopped (SIGSTOP) in the middle of
        # a SQLite write would hold that file's lock, and freeze every other worker's steps.
        ledger_schema = new_schema()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {ledger_schema}")
            conn.execute(
                f"CREATE TABLE {ledger_schema}.effects (id bigserial PRIMARY KEY, "
                "run_id text NOT NULL, name text NOT NULL, step_key text NOT NULL, "
                "pid integer NOT NULL, at double precision NOT NULL)"
            )
        self.ledger_target = f"{POSTGRES_URL} table={ledger_schema}.effects"
        self.runs = PgDb(self.schema)
        self.ledger = PgDb(ledger_schema)
        self.workers: list[Worker] = []

    def start_worker(self, label: str, *args: str, slow: str | None = None) -> Worker:
        """Start ``legato worker`` and wait until it has registered itself."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CRASH_APP_", "LEGATO_"))}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p
        )
        env["CRASH_APP_LEDGER"] = self.ledger_target
        if slow:
            env["CRASH_APP_SLOW"] = slow
        log_path = self.tmp_path / f"worker-{label}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [*legato_command(), "worker", APP_TARGET, "--database", self.url, *args],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        worker = Worker(proc, log_path, label)
        self.workers.append(worker)
        wait_until(
            lambda: bool(self.runs.rows("SELECT 1 FROM workers WHERE pid = ?", (proc.pid,))),
            START_TIMEOUT_S,
            f"the {label} worker to register itself",
            worker,
        )
        return worker

    def worker_id(self, worker: Worker) -> str:
        rows = self.runs.rows("SELECT worker_id FROM workers WHERE pid = ?", (worker.pid,))
        assert rows, f"{worker.label} has no worker row"
        return str(rows[0][0])

    def owned_by(self, worker_id: str) -> int:
        marks = ", ".join("?" * len(TERMINAL))
        return self.runs.rows(
            f"SELECT count(*) FROM runs WHERE owner = ? AND status NOT IN ({marks})",
            (worker_id, *TERMINAL),
        )[0][0]

    def start_runs(self, orders: list[dict[str, Any]]) -> None:
        """Start every run through a client, many at once (they commit in groups)."""

        async def start_all() -> None:
            async with legato.AsyncClient(self.url) as client:
                for at in range(0, len(orders), 500):
                    chunk = orders[at : at + 500]
                    await asyncio.gather(
                        *(client.start(WORKFLOW, o, run_id=o["id"]) for o in chunk)
                    )

        asyncio.run(start_all())

    def progress(self) -> str:
        return "Runs by status: " + repr(
            self.runs.rows("SELECT status, count(*) FROM runs GROUP BY status")
        )

    def wait_all_ended(self, runs: int, what: str, *alive: Worker) -> float:
        started = time.monotonic()
        while terminal_count(self.runs) < runs:  # type: ignore[arg-type]
            for worker in alive:
                worker.check_alive()
            if time.monotonic() - started > FINISH_TIMEOUT_S:
                logs = "\n".join(f"{w.label}:\n{w.log_tail(15)}" for w in alive)
                pytest.fail(f"{what}: not all {runs} runs ended. {self.progress()}\n{logs}")
            time.sleep(0.05)
        return time.monotonic() - started

    def close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                if worker.proc.poll() is None:
                    os.kill(worker.pid, signal.SIGCONT)  # a stopped one cannot die
                worker.kill()
        self.runs.close()
        self.ledger.close()


@pytest.fixture
def scale_env(tmp_path: Path) -> Iterator[ScaleEnv]:
    env = ScaleEnv(tmp_path)
    try:
        yield env
    finally:
        env.close()


def saga_orders(n: int, prefix: str = "run") -> list[dict[str, Any]]:
    """One input per run; every tenth fails for good in step3 and is compensated."""
    return [{"id": f"{prefix}-{i:05d}", "fail": i % 10 == 7} for i in range(n)]


def check_outcome(
    env: ScaleEnv,
    orders: list[dict[str, Any]],
    recorded_before: set[tuple[str, str]] | None = None,
    counts_before: Counter[tuple[str, str]] | None = None,
) -> list[str]:
    """Every run ended as it would have with no trouble; its history holds each step once;
    what was recorded before the trouble ran once, and never again."""
    final_status = statuses(env.runs)  # type: ignore[arg-type]
    final_counts = effect_counts(env.ledger)
    final_history = history(env.runs)  # type: ignore[arg-type]
    problems: list[str] = []
    for order in orders:
        run = order["id"]
        want = "compensated" if order["fail"] else "completed"
        if final_status.get(run) != want:
            problems.append(f"{run}: ended {final_status.get(run)!r}, expected {want!r}")
        required = expected_effects(order)
        for name in (*STEPS, "step1.compensate", "step2.compensate"):
            ran = final_counts[(run, name)]
            if name not in required:
                if ran:
                    problems.append(f"{run}: {name} ran {ran}x but should never run")
                continue
            if ran < 1:
                problems.append(f"{run}: {name} never ran")
            if recorded_before is not None and (run, name) in recorded_before:
                before = counts_before[(run, name)] if counts_before is not None else 1
                if before != 1 or ran != 1:
                    problems.append(
                        f"{run}: {name} was recorded before the trouble, yet ran "
                        f"{before}x before and {ran - before}x after"
                    )
        problems.extend(check_history(order, final_history.get(run, [])))
    problems.extend(check_ledger(orders, effects(env.ledger)))
    return problems


# -- the tests ----------------------------------------------------------------------------------


def test_three_workers_one_sigkilled_mid_way_the_others_finish_every_run(
    scale_env: ScaleEnv,
) -> None:
    env = scale_env
    orders = saga_orders(3000)
    # The victim's step3 is slow, so it holds runs in flight whenever it is killed (with
    # fast steps everywhere it may have finished its share before the moment comes).
    workers = [env.start_worker("w1", slow="step3:0.2")]
    workers += [env.start_worker(name) for name in ("w2", "w3")]
    victim = workers[0]
    victim_id = env.worker_id(victim)
    # Given three workers sharing 3,000 sagas
    env.start_runs(orders)
    # When one is SIGKILLed while it holds runs in flight, a good part done
    wait_until(
        lambda: terminal_count(env.runs) >= 600 and env.owned_by(victim_id) >= 10,  # type: ignore[arg-type]
        FINISH_TIMEOUT_S,
        "the moment to kill (600 runs ended, the victim holding 10)",
        victim,
        env.progress,
    )
    victim.kill()
    held_at_kill = env.owned_by(victim_id)
    recorded = recorded_completions(env.runs)  # type: ignore[arg-type]
    counts = effect_counts(env.ledger)
    ended_at_kill = terminal_count(env.runs)  # type: ignore[arg-type]
    assert held_at_kill > 0 and ended_at_kill < len(orders), (held_at_kill, ended_at_kill)
    # Then the two others finish every run, the victim's included
    took = env.wait_all_ended(len(orders), "after the SIGKILL", *workers[1:])
    print(
        f"\nkilled holding {held_at_kill} runs with {ended_at_kill} ended; the rest ended "
        f"{took:.1f}s later"
    )
    problems = check_outcome(env, orders, recorded, counts)
    assert not problems, f"{len(problems)} problem(s):\n  " + "\n  ".join(problems[:40])
    # And the runs were shared: every worker executed some
    pids = Counter(pid for (pid,) in env.ledger.rows("SELECT pid FROM effects"))
    assert {w.pid for w in workers} <= set(pids), pids


def test_a_worker_stalled_past_its_lease_loses_its_runs_and_its_late_writes_are_refused(
    scale_env: ScaleEnv,
) -> None:
    env = scale_env
    orders = saga_orders(30, "stall")  # fewer than the worker's 32 step threads
    # Given a worker (lease 2 s) whose step3 takes 1 s, holding every run in it
    stalled = env.start_worker("stalled", "--lease", "2", slow="step3:1")
    stalled_id = env.worker_id(stalled)
    env.start_runs(orders)
    wait_until(
        lambda: (
            env.owned_by(stalled_id) == len(orders)
            and len(env.ledger.rows("SELECT 1 FROM effects WHERE name = 'step2'")) == len(orders)
        ),
        FINISH_TIMEOUT_S,
        "the stalled worker to hold every run in step3",
        stalled,
        env.progress,
    )
    # When it is stopped (SIGSTOP) past its lease, and another worker is running
    os.kill(stalled.pid, signal.SIGSTOP)
    other = env.start_worker("other")
    # Then the other takes every run over and finishes it
    took = env.wait_all_ended(len(orders), "after the takeover", other)
    assert env.runs.rows("SELECT 1 FROM workers WHERE worker_id = ?", (stalled_id,)) == []
    before = history(env.runs)  # type: ignore[arg-type]
    # When the stalled worker comes back: its step3s finish and it tries to record them
    os.kill(stalled.pid, signal.SIGCONT)
    wait_until(
        lambda: "presumed dead" in stalled.log_path.read_text(errors="replace"),
        FINISH_TIMEOUT_S,
        "the stalled worker to learn it was presumed dead",
        stalled,
    )
    time.sleep(1.0)  # let every late write of its reach the database (and be refused)
    stalled.check_alive()
    # Then none of its writes landed: history is as the other left it, each step once
    assert history(env.runs) == before  # type: ignore[arg-type]
    problems = check_outcome(env, orders)
    assert not problems, f"{len(problems)} problem(s):\n  " + "\n  ".join(problems[:40])
    late = [
        r
        for r in env.ledger.rows(
            "SELECT run_id FROM effects WHERE name = 'step3' AND pid = ?", (stalled.pid,)
        )
    ]
    assert late, "the stalled worker never finished a step3: the test did not stall it mid-step"
    # And it registered again under a new id, to work on
    rows = env.runs.rows("SELECT worker_id FROM workers WHERE pid = ?", (stalled.pid,))
    assert rows and rows[0][0] != stalled_id
    print(f"\ntaken over and finished {took:.1f}s after the stall; {len(late)} late step3s refused")


def _restart_postgres() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.serial
def test_postgres_restarted_under_working_and_recovering_workers(scale_env: ScaleEnv) -> None:
    env = scale_env
    orders = saga_orders(1500, "restart")
    # As above: the first's slow step3 keeps runs in flight there until it dies.
    first, second = env.start_worker("first", slow="step3:0.2"), env.start_worker("second")
    first_id = env.worker_id(first)
    env.start_runs(orders)
    wait_until(
        lambda: terminal_count(env.runs) >= 300 and env.owned_by(first_id) >= 10,  # type: ignore[arg-type]
        FINISH_TIMEOUT_S,
        "runs under way on both workers",
        first,
        env.progress,
    )
    # When one worker dies, and the server restarts while the other recovers its runs
    first.kill()
    _restart_postgres()
    # Then the survivor reconnects and finishes every run
    took = env.wait_all_ended(len(orders), "after the server restarted", second)
    problems = check_outcome(env, orders)
    assert not problems, f"{len(problems)} problem(s):\n  " + "\n  ".join(problems[:40])
    log = second.log_path.read_text(errors="replace")
    assert "Traceback" not in log or "cannot reach PostgreSQL" in log, log[-3000:]
    print(f"\nall runs ended {took:.1f}s after the restart")


def test_a_rolling_restart_of_three_workers_under_load_strands_no_run(
    scale_env: ScaleEnv,
) -> None:
    env = scale_env
    orders = saga_orders(2000, "roll")
    workers = [env.start_worker(f"old{i}") for i in range(3)]
    env.start_runs(orders)
    # When each worker in turn is stopped with SIGTERM and a new one started in its place
    for i, old in enumerate(list(workers)):
        wait_until(
            lambda i=i: terminal_count(env.runs) >= 300 * (i + 1),  # type: ignore[arg-type,misc]
            FINISH_TIMEOUT_S,
            f"progress before restarting worker {i}",
            old,
            env.progress,
        )
        old_id = env.worker_id(old)
        old.proc.send_signal(signal.SIGTERM)
        old.proc.wait(timeout=60)
        assert old.proc.returncode == 0, old.log_tail()
        # It handed its runs back: none still names it
        assert env.owned_by(old_id) == 0
        workers[i] = env.start_worker(f"new{i}")
    # Then the new workers finish every run
    env.wait_all_ended(len(orders), "after the rolling restart", *workers)
    problems = check_outcome(env, orders)
    assert not problems, f"{len(problems)} problem(s):\n  " + "\n  ".join(problems[:40])
    assert in_flight_count(env.runs) == 0  # type: ignore[arg-type]
