"""The app that ``test_crash_recovery.py`` serves with a real ``legato worker`` process.

A three-step saga. Each step and each compensation records its side effect in a
*ledger*: a separate SQLite file (path in ``$CRASH_APP_LEDGER``; or ``postgresql://...
table=SCHEMA.effects``, a PostgreSQL table), one row per execution,
inserted on the ledger's own connection and committed before the step returns. A step
that runs twice therefore leaves two rows, whatever the engine's own database says.
The test creates the ledger's ``effects`` table; this module only inserts into it.

Input: ``{"id": RUN_ID, "fail": bool}``. A run with ``"fail"`` fails for good in step3
(a non-retryable error, raised before any effect), so step2's and then step1's
compensations run and the run ends ``compensated``.

``$CRASH_APP_HOLD`` names a step (``step2``) or compensation (``step1.compensate``) that
waits forever before its effect: that is how the recovery tests get a worker killed with
every run in flight at a known point. ``$CRASH_APP_SLOW`` (``step3:1.0``) makes step3
take that long in its thread: a worker stalled meanwhile comes back with a result to
record.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import threading
import time
from typing import Any

import legato

LEDGER_ENV = "CRASH_APP_LEDGER"
HOLD_ENV = "CRASH_APP_HOLD"
SLOW_ENV = "CRASH_APP_SLOW"  # "step3:1.0": step3 takes 1 s (in its thread) before its effect

app = legato.App("crash-recovery")

_lock = threading.Lock()
_ledger: Any = None
_insert = "INSERT INTO effects (run_id, name, step_key, pid, at) VALUES (?, ?, ?, ?, ?)"


class PermanentFailure(Exception):
    """step3's failure for runs whose input says so; never retried."""


def record(order: dict[str, Any], name: str) -> None:
    """Insert one effect row and commit it before returning (sync steps run in threads)."""
    global _ledger, _insert
    with _lock:
        if _ledger is None:
            target = os.environ[LEDGER_ENV]
            if target.startswith("postgresql://"):
                # A PostgreSQL ledger (the scale-out tests): a worker stopped with SIGSTOP
                # cannot hold its lock the way a SQLite writer would.
                import psycopg

                conninfo, _, table = target.partition(" table=")
                _ledger = psycopg.connect(conninfo, autocommit=True)
                _insert = _insert.replace("effects", table).replace("?", "%s")
            else:
                _ledger = sqlite3.connect(
                    target, isolation_level=None, check_same_thread=False, timeout=30.0
                )
                _ledger.execute("PRAGMA busy_timeout = 30000")
        # Autocommit: the row is committed when execute returns. SQLite's WAL lives in the
        # OS page cache once written, so a SIGKILL right after this cannot lose it.
        row = (order["id"], name, legato.step_key(), os.getpid(), time.time())
        if isinstance(_ledger, sqlite3.Connection):
            _ledger.execute(_insert, row)
            return
        import psycopg

        for attempt in range(300):  # the server may be restarting (scale-out tests)
            try:
                if _ledger.closed or _ledger.broken:
                    _ledger = psycopg.connect(_ledger.info.dsn, autocommit=True)
                _ledger.execute(_insert, row)
                return
            except psycopg.OperationalError:
                if attempt == 299:
                    raise
                time.sleep(0.1)


@app.step(name="step1")
def step1(order: dict[str, Any]) -> dict[str, str]:
    record(order, "step1")
    return {"reserved": order["id"]}


async def hold(name: str) -> None:
    """Wait forever (until the worker is killed) if ``$CRASH_APP_HOLD`` names this step."""
    if os.environ.get(HOLD_ENV) == name:
        await asyncio.Event().wait()


@step1.compensate
async def undo_step1(order: dict[str, Any], result: dict[str, str]) -> None:
    assert result == {"reserved": order["id"]}, result
    await hold("step1.compensate")
    record(order, "step1.compensate")


@app.step(name="step2")
async def step2(order: dict[str, Any]) -> dict[str, str]:
    await hold("step2")
    await asyncio.sleep(random.uniform(0.002, 0.02))
    record(order, "step2")
    return {"charged": order["id"]}


@step2.compensate
async def undo_step2(order: dict[str, Any], result: dict[str, str]) -> None:
    assert result == {"charged": order["id"]}, result
    record(order, "step2.compensate")


@app.step(name="step3", retry=legato.Retry(non_retryable=(PermanentFailure,)))
def step3(order: dict[str, Any]) -> dict[str, str]:
    step, _, seconds = os.environ.get(SLOW_ENV, "").partition(":")
    if step == "step3":
        time.sleep(float(seconds))
    if order["fail"]:
        raise PermanentFailure(f"order {order['id']} cannot be shipped")
    record(order, "step3")
    return {"shipped": order["id"]}


@app.workflow(name="crash_saga")
async def crash_saga(order: dict[str, Any]) -> dict[str, Any]:
    reserved = await step1(order)
    charged = await step2(order)
    shipped = await step3(order)
    return reserved | charged | shipped
