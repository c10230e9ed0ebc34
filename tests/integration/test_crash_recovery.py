"""Crash recovery with real processes: SIGKILL a ``legato worker`` in the middle of 1,000 runs.

The worker serves ``tests/integration/crash_app.py``, a three-step saga whose steps and
compensations count their executions in a separate SQLite *ledger*. The engine's own
database (``runs.db``, or a PostgreSQL schema in the PostgreSQL pass) is read directly,
never through the engine, so what the test sees at the kill is exactly what was committed.

What may run twice: only a step (or compensation) in flight at the kill, whose effect
was committed but whose ``step_completed`` record was not. Anything recorded before the
kill must never run again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.db import fresh_database
from tests.integration.direct_db import DirectDb

import legato

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_TARGET = "tests.integration.crash_app:app"
WORKFLOW = "crash_saga"
RUNS = 1000
KILL_AFTER_TERMINAL = 350  # kill once this many runs have ended (of RUNS) ...
KILL_IN_FLIGHT = 50  # ... while at least this many are claimed and unfinished
START_TIMEOUT_S = 30.0
FINISH_TIMEOUT_S = 60.0

TERMINAL = ("completed", "failed", "compensated", "compensation_failed", "cancelled", "blocked")
STEPS = ("step1", "step2", "step3")

LEDGER_SCHEMA = """
CREATE TABLE effects (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,  -- execution order, never reused
    run_id   TEXT NOT NULL,
    name     TEXT NOT NULL,                      -- step1, ..., step2.compensate
    step_key TEXT NOT NULL,                      -- legato.step_key() of the execution
    pid      INTEGER NOT NULL,                   -- the worker process that executed it
    at       REAL NOT NULL
)
"""


def orders() -> list[dict[str, Any]]:
    """One input per run; every tenth run fails for good in step3 and is compensated."""
    return [{"id": f"run-{i:04d}", "fail": i % 10 == 7} for i in range(RUNS)]


def expected_effects(order: dict[str, Any]) -> tuple[str, ...]:
    if order["fail"]:
        return ("step1", "step2", "step2.compensate", "step1.compensate")
    return STEPS


# -- reading the databases directly ----------------------------------------------------------


Db = DirectDb
"""A plain reader on a database the worker writes (``direct_db.py``)."""


def terminal_count(runs_db: Db) -> int:
    marks = ", ".join("?" * len(TERMINAL))
    return runs_db.rows(f"SELECT count(*) FROM runs WHERE status IN ({marks})", TERMINAL)[0][0]


def in_flight_count(runs_db: Db) -> int:
    """Runs a worker has claimed and not finished."""
    marks = ", ".join("?" * len(TERMINAL))
    return runs_db.rows(
        f"SELECT count(*) FROM runs WHERE owner IS NOT NULL AND status NOT IN ({marks})", TERMINAL
    )[0][0]


def statuses(runs_db: Db) -> dict[str, str]:
    return dict(runs_db.rows("SELECT run_id, status FROM runs"))  # type: ignore[arg-type]


def history(runs_db: Db) -> dict[str, list[tuple[int, str, str | None, str | None]]]:
    """Per run: (pos, kind, key, name) in order."""
    by_run: dict[str, list[tuple[int, str, str | None, str | None]]] = {}
    for run_id, pos, kind, key, name in runs_db.rows(
        "SELECT run_id, pos, kind, key, name FROM history ORDER BY run_id, pos"
    ):
        by_run.setdefault(run_id, []).append((pos, kind, key, name))
    return by_run


def recorded_completions(runs_db: Db) -> set[tuple[str, str]]:
    """(run, effect name) whose completion is recorded in history."""
    done = set()
    for run_id, kind, name in runs_db.rows(
        "SELECT run_id, kind, name FROM history "
        "WHERE kind IN ('step_completed', 'compensation_completed')"
    ):
        done.add((run_id, name if kind == "step_completed" else f"{name}.compensate"))
    return done


Effect = tuple[int, str, str, str]  # ledger row: id, run, name, step key


def effects(ledger: Db) -> list[Effect]:
    """Ledger rows in execution order."""
    return ledger.rows("SELECT id, run_id, name, step_key FROM effects ORDER BY id")  # type: ignore[return-value]


def effect_counts(ledger: Db) -> Counter[tuple[str, str]]:
    """How many times each (run, step or compensation) has run."""
    return Counter((run, name) for _, run, name, _ in effects(ledger))


# -- worker processes ---------------------------------------------------------------------------


def legato_command() -> list[str]:
    """The ``legato`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("legato")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from legato.cli.main import main; main()"]


class Worker:
    """One ``legato worker`` subprocess; its stderr goes to a file for diagnosis."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path, label: str) -> None:
        self.proc = proc
        self.log_path = log_path
        self.label = label

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty)"

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            pytest.fail(
                f"the {self.label} worker (pid {self.pid}) exited with code {code}; "
                f"its stderr:\n{self.log_tail()}",
                pytrace=False,
            )

    def kill(self) -> None:
        """SIGKILL and reap: an unreaped zombie would still look alive to the next worker."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    worker: Worker | None = None,
    describe: Callable[[], str] = lambda: "",
) -> float:
    """Poll ``condition``; fail clearly if ``worker`` dies or time runs out. Returns seconds."""
    started = time.monotonic()
    while not condition():
        if worker is not None:
            worker.check_alive()
        if time.monotonic() - started > timeout_s:
            log = f"\n{worker.label} worker stderr:\n{worker.log_tail()}" if worker else ""
            pytest.fail(
                f"timed out after {timeout_s:.0f}s waiting for {what}. {describe()}{log}",
                pytrace=False,
            )
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture
def crash_env(tmp_path: Path) -> Iterator[CrashEnv]:
    env = CrashEnv(tmp_path)
    try:
        yield env
    finally:
        env.close()


class CrashEnv:
    """A runs database (``url``, else a ``fresh_database``), a SQLite ledger, and the
    workers serving them (all killed at teardown)."""

    def __init__(self, tmp_path: Path, url: str | None = None) -> None:
        self.tmp_path = tmp_path
        self.url = url or fresh_database(tmp_path, "runs.db")
        self.ledger_path = tmp_path / "ledger.db"
        with contextlib.closing(sqlite3.connect(self.ledger_path)) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(LEDGER_SCHEMA)
        self.runs = Db(self.url)
        self.ledger = Db(f"sqlite:///{self.ledger_path}")
        self.workers: list[Worker] = []

    def start_worker(self, label: str, *, hold: str | None = None) -> Worker:
        """Start ``legato worker`` and wait until it has registered itself and the workflow."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CRASH_APP_", "LEGATO_"))}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p
        )
        env["CRASH_APP_LEDGER"] = str(self.ledger_path)
        if hold:
            env["CRASH_APP_HOLD"] = hold
        log_path = self.tmp_path / f"worker-{label}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [*legato_command(), "worker", APP_TARGET, "--database", self.url],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        worker = Worker(proc, log_path, label)
        self.workers.append(worker)
        wait_until(
            lambda: bool(
                self.runs.rows("SELECT 1 FROM workers WHERE pid = ?", (proc.pid,))
                and self.runs.rows("SELECT 1 FROM workflows WHERE name = ?", (WORKFLOW,))
            ),
            START_TIMEOUT_S,
            f"the {label} worker to register itself and {WORKFLOW!r}",
            worker,
        )
        return worker

    def close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.kill()
        self.runs.close()
        self.ledger.close()


def progress(env: CrashEnv) -> Callable[[], str]:
    return lambda: (
        "Runs by status: "
        + repr(env.runs.rows("SELECT status, count(*) FROM runs GROUP BY status"))
    )


# -- the tests ----------------------------------------------------------------------------------


def test_sigkill_mid_way_no_recorded_step_runs_again_and_every_run_finishes(
    crash_env: CrashEnv,
) -> None:
    env = crash_env
    all_orders = orders()
    # Given a worker executing runs as a client starts them
    first = env.start_worker("first")
    killed_at_start = None

    def kill_now() -> bool:
        # A good fraction has ended, and the worker is busy with others: the kill lands
        # mid-step, not between two polls for work.
        return (
            terminal_count(env.runs) >= KILL_AFTER_TERMINAL
            and in_flight_count(env.runs) >= KILL_IN_FLIGHT
        )

    with legato.Client(env.url) as client:
        for i, order in enumerate(all_orders):
            client.start(WORKFLOW, order, run_id=order["id"])
            # When a good fraction has ended, others are in flight and the rest not
            # started yet, the worker is SIGKILLed
            if killed_at_start is None and i % 5 == 4:
                first.check_alive()
                if kill_now():
                    first.kill()
                    killed_at_start = i + 1
        if killed_at_start is None:
            wait_until(kill_now, FINISH_TIMEOUT_S, "the moment to kill", first, progress(env))
            first.kill()
            killed_at_start = RUNS
    # (the rest, if any, were started with no worker running: they wait, pending)

    at_kill_status = Counter(statuses(env.runs).values())
    at_kill_recorded = recorded_completions(env.runs)
    at_kill_counts = effect_counts(env.ledger)
    ended_at_kill = sum(at_kill_status[s] for s in TERMINAL)
    in_flight_at_kill = in_flight_count(env.runs)
    assert 0 < ended_at_kill < RUNS and in_flight_at_kill > 0, (
        f"the kill did not land mid-way: {at_kill_status}, {in_flight_at_kill} in flight"
    )

    # Then a restarted worker finishes every run
    second = env.start_worker("second")
    finish_s = wait_until(
        lambda: terminal_count(env.runs) == RUNS,
        FINISH_TIMEOUT_S,
        f"all {RUNS} runs to end after the restart",
        second,
        progress(env),
    )
    second.check_alive()
    in_flight = sum(1 for key, n in at_kill_counts.items() if n and key not in at_kill_recorded)
    summary = (
        f"killed after starting {killed_at_start} runs; at the kill: "
        f"{dict(at_kill_status)}, {in_flight_at_kill} runs in flight, "
        f"{len(at_kill_recorded)} completions recorded, "
        f"{in_flight} effect(s) committed but not recorded; all runs ended "
        f"{finish_s:.2f}s after the restart"
    )
    print(f"\n{summary}")

    final_status = statuses(env.runs)
    final_counts = effect_counts(env.ledger)
    final_history = history(env.runs)
    problems: list[str] = []

    for order in all_orders:
        run = order["id"]
        want = "compensated" if order["fail"] else "completed"
        if final_status.get(run) != want:
            problems.append(f"{run}: ended {final_status.get(run)!r}, expected {want!r}")
        required = expected_effects(order)
        for name in (*STEPS, "step1.compensate", "step2.compensate"):
            before, after = at_kill_counts[(run, name)], final_counts[(run, name)]
            if name not in required:
                if after:
                    problems.append(f"{run}: {name} ran {after}x but should never run")
            elif (run, name) in at_kill_recorded:
                # Recorded before the kill: it ran exactly once, and never again.
                if before != 1 or after != 1:
                    problems.append(
                        f"{run}: {name} was recorded before the kill, yet ran "
                        f"{before}x before and {after - before}x after the restart"
                    )
            # Not recorded: it ran after the restart exactly once; if it was in flight at
            # the kill (effect committed, record lost) it ran once before too.
            elif before > 1 or after != before + 1:
                problems.append(
                    f"{run}: {name} was not recorded at the kill; it ran "
                    f"{before}x before and {after - before}x after the restart "
                    "(expected 0 or 1 before, then exactly 1)"
                )
        problems.extend(check_history(order, final_history.get(run, [])))

    problems.extend(check_ledger(all_orders, effects(env.ledger)))
    assert not problems, (
        f"{len(problems)} problem(s) after crash recovery ({summary}):\n  "
        + "\n  ".join(problems[:40])
    )


def check_history(
    order: dict[str, Any], records: list[tuple[int, str, str | None, str | None]]
) -> list[str]:
    """Exactly one completion per step (and per compensation), in the saga's order."""
    run = order["id"]
    kinds = Counter((kind, name) for _, kind, _, name in records)
    problems = []

    def exactly_once(kind: str, name: str | None) -> None:
        if kinds[(kind, name)] != 1:
            problems.append(f"{run}: history has {kinds[(kind, name)]} {kind} of {name}")

    for name in ("step1", "step2"):
        exactly_once("step_completed", name)
    if order["fail"]:
        exactly_once("step_failed", "step3")
        exactly_once("run_failed", None)
        exactly_once("run_compensated", None)
        for name in ("step2", "step1"):
            exactly_once("compensation_completed", name)
        if kinds[("step_completed", "step3")] or kinds[("run_completed", None)]:
            problems.append(f"{run}: a failing run recorded step3 or run completion")
        undo = [name for _, kind, _, name in records if kind == "compensation_completed"]
        if undo != ["step2", "step1"]:
            problems.append(f"{run}: compensations recorded in order {undo}, expected step2, step1")
    else:
        exactly_once("step_completed", "step3")
        exactly_once("run_completed", None)
        if any(kind.startswith(("compensation", "run_failed")) for _, kind, _, _ in records):
            problems.append(f"{run}: a completed run has failure or compensation records")
    return problems


def check_ledger(all_orders: list[dict[str, Any]], rows: list[Effect]) -> list[str]:
    """Step keys are stable per call and unique per run; effects follow the saga's order
    (every step, then step2's undo, then step1's undo)."""
    ids: dict[tuple[str, str], list[int]] = {}
    keys: dict[tuple[str, str], set[str]] = {}
    for effect_id, run, name, step_key in rows:
        ids.setdefault((run, name), []).append(effect_id)
        keys.setdefault((run, name), set()).add(step_key)
    problems = []
    run_keys: dict[str, list[str]] = {}
    for (run, name), seen in sorted(keys.items()):
        if len(seen) != 1:
            problems.append(f"{run}: {name} ran with different step keys {sorted(seen)}")
        run_keys.setdefault(run, []).extend(seen)
    for run, found in run_keys.items():
        if len(set(found)) != len(found):
            problems.append(f"{run}: two different calls shared a step key: {sorted(found)}")
    for order in all_orders:
        if not order["fail"]:
            continue
        run = order["id"]
        done = ids.get((run, "step1"), []) + ids.get((run, "step2"), [])
        undo2 = ids.get((run, "step2.compensate"), [])
        undo1 = ids.get((run, "step1.compensate"), [])
        if not (done and undo2 and undo1 and max(done) < min(undo2) and max(undo2) < min(undo1)):
            problems.append(
                f"{run}: effects out of saga order: steps at {done}, step2's undo "
                f"at {undo2}, step1's undo at {undo1}"
            )
    return problems


def kill_while_held(
    env: CrashEnv, hold: str, runs: list[dict[str, Any]], held: Callable[[], bool]
) -> str:
    """Start a worker that holds runs at ``hold``, start ``runs``, wait until ``held()``,
    SIGKILL the worker and return its id (the owner of the runs it left unfinished)."""
    first = env.start_worker("holding", hold=hold)
    with legato.Client(env.url) as client:
        for order in runs:
            client.start(WORKFLOW, order, run_id=order["id"])
    wait_until(held, FINISH_TIMEOUT_S, f"runs to be held in {hold}", first, progress(env))
    first.kill()
    marks = ", ".join("?" * len(TERMINAL))
    sql = f"SELECT DISTINCT owner FROM runs WHERE status NOT IN ({marks})"
    owners = {owner for (owner,) in env.runs.rows(sql, TERMINAL)}
    assert len(owners) == 1 and None not in owners, (
        f"the unfinished runs are not all owned by the killed worker: {owners}"
    )
    return owners.pop()


def restart_and_finish(env: CrashEnv, dead_owner: str, runs: int) -> str:
    """Start a second worker; wait until the dead worker's runs are released and every run
    has ended. Returns a line of timings."""
    restarted = time.monotonic()
    second = env.start_worker("restarted")
    registered_s = time.monotonic() - restarted
    released_s = wait_until(
        lambda: not env.runs.rows("SELECT 1 FROM runs WHERE owner = ? LIMIT 1", (dead_owner,)),
        FINISH_TIMEOUT_S,
        "the dead worker's runs to be released",
        second,
        progress(env),
    )
    wait_until(
        lambda: terminal_count(env.runs) == runs,
        FINISH_TIMEOUT_S,
        f"all {runs} runs to end after the restart",
        second,
        progress(env),
    )
    ended_s = time.monotonic() - restarted
    second.check_alive()
    return (
        f"restarted worker registered after {registered_s:.2f}s, released the dead worker's "
        f"runs {released_s:.2f}s later; all runs ended {ended_s:.2f}s after the restart"
    )


def check_every_effect_once(env: CrashEnv, all_orders: list[dict[str, Any]]) -> list[str]:
    """Every run ended as expected, every effect ran exactly once, history agrees."""
    final_status = statuses(env.runs)
    final_counts = effect_counts(env.ledger)
    final_history = history(env.runs)
    problems = []
    for order in all_orders:
        run = order["id"]
        want = "compensated" if order["fail"] else "completed"
        if final_status.get(run) != want:
            problems.append(f"{run}: ended {final_status.get(run)!r}, expected {want!r}")
        for name in (*STEPS, "step1.compensate", "step2.compensate"):
            want_count = 1 if name in expected_effects(order) else 0
            if final_counts[(run, name)] != want_count:
                problems.append(
                    f"{run}: {name} ran {final_counts[(run, name)]}x, expected {want_count}x"
                )
        problems.extend(check_history(order, final_history.get(run, [])))
    problems.extend(check_ledger(all_orders, effects(env.ledger)))
    return problems


def count_history(env: CrashEnv, kind: str, name: str) -> int:
    return env.runs.rows(
        "SELECT count(DISTINCT run_id) FROM history WHERE kind = ? AND name = ?", (kind, name)
    )[0][0]


def test_restarted_worker_recovers_every_run_a_killed_worker_left_unfinished(
    crash_env: CrashEnv,
) -> None:
    env = crash_env
    all_orders = orders()
    # Given a worker that took all 1,000 runs and holds each in step2 (step1 recorded)
    # When it is SIGKILLed
    dead_owner = kill_while_held(
        env, "step2", all_orders, lambda: count_history(env, "step_started", "step2") == RUNS
    )
    at_kill = Counter(statuses(env.runs).values())
    assert at_kill == {"running": RUNS}, f"expected every run unfinished at the kill: {at_kill}"

    # Then a restarted worker picks every one of them up and finishes it, running each
    # step once (step1 was recorded before the kill: it does not run again)
    timings = restart_and_finish(env, dead_owner, RUNS)
    print(f"\nrecovery of {RUNS} runs: {timings}")
    problems = check_every_effect_once(env, all_orders)
    assert not problems, f"{len(problems)} problem(s) after recovery ({timings}):\n  " + (
        "\n  ".join(problems[:40])
    )


def test_compensation_interrupted_by_sigkill_resumes_where_it_stopped(
    crash_env: CrashEnv,
) -> None:
    env = crash_env
    all_orders = orders()
    failing = sum(1 for order in all_orders if order["fail"])
    # Given a worker that has compensated step2 of every failing run and holds each in
    # step1's compensation, while the other runs completed
    # When it is SIGKILLed
    dead_owner = kill_while_held(
        env,
        "step1.compensate",
        all_orders,
        lambda: (
            count_history(env, "compensation_started", "step1") == failing
            and terminal_count(env.runs) == RUNS - failing
        ),
    )
    at_kill = Counter(statuses(env.runs).values())
    assert at_kill == {"completed": RUNS - failing, "compensating": failing}, at_kill
    undone_at_kill = count_history(env, "compensation_completed", "step2")
    assert undone_at_kill == failing, f"only {undone_at_kill} step2 compensations recorded"

    # Then the restarted worker runs step1's compensation once per failing run, never
    # step2's again, and leaves the completed runs alone
    timings = restart_and_finish(env, dead_owner, RUNS)
    print(f"\nrecovery of {failing} compensating runs: {timings}")
    problems = check_every_effect_once(env, all_orders)
    assert not problems, f"{len(problems)} problem(s) after recovery ({timings}):\n  " + (
        "\n  ".join(problems[:40])
    )
