"""A run's error is stored once: its row names the history record that holds it.

Read through the API, ``Run.error`` is the same object as before; in the SQLite file the
``runs`` row holds no copy of it (``error`` NULL, ``error_pos`` the record's position).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import legato
from legato.errors import RunFailed
from legato.model import RunStatus

MESSAGE = "card declined: insufficient funds (a message long enough to find) " * 3


def define(app: legato.App) -> None:
    @app.step(name="reserve")
    async def reserve(order: str) -> str:
        return f"res-{order}"

    @reserve.compensate
    async def release(order: str, reservation: str) -> None:
        return None

    @app.step(name="charge", retry=legato.Retry(max_attempts=1))
    async def charge(order: str) -> str:
        raise ValueError(MESSAGE)

    @app.workflow(name="checkout")
    async def checkout(order: str) -> str:
        await reserve(order)
        return await charge(order)

    @app.workflow(name="quick")
    async def quick(order: str) -> str:
        return await charge(order)


def rows(path: Path, run_id: str) -> tuple[bytes | None, int | None, list[tuple[int, str]]]:
    with sqlite3.connect(path) as conn:
        error, error_pos = conn.execute(
            "SELECT error, error_pos FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        holding = conn.execute(
            "SELECT pos, kind FROM history WHERE run_id = ? AND instr(data, ?) > 0 ORDER BY pos",
            (run_id, MESSAGE.encode()),
        ).fetchall()
    return error, error_pos, holding


async def test_a_failed_and_a_compensated_run_store_their_error_once(tmp_path: Path) -> None:
    path = tmp_path / "legato.db"
    app = legato.App("shop", f"sqlite:///{path}")
    define(app)
    async with app:
        for workflow, run_id in (("checkout", "c-1"), ("quick", "q-1")):
            await app.start(workflow, "o-1", run_id=run_id)
            try:
                await app.result(run_id, timeout=10)
            except RunFailed:
                pass
            run = await app.get_run(run_id)
            assert run is not None
            # Through the API: the error as it always was
            assert run.error == {
                "type": "ValueError",
                "message": MESSAGE,
                "step": "charge",
                "attempts": 1,
            }
            assert run.status is (
                RunStatus.COMPENSATED if workflow == "checkout" else RunStatus.FAILED
            )
            history = await app.history(run_id)
            [failed] = [e for e in history if e.kind == "run_failed"]
            assert (await app.describe(run_id)).last_error == run.error

            # In the file: no copy in the row, which names the run_failed record
            error, error_pos, holding = rows(path, run_id)
            assert error is None
            assert error_pos == failed.pos
            # the message is in the attempt's record and the run's failure, nowhere else
            assert [kind for _, kind in holding] == ["step_failed", "run_failed"]
            with sqlite3.connect(path) as conn:
                copies = conn.execute(
                    "SELECT count(*) FROM runs WHERE instr(error, ?) > 0", (MESSAGE.encode(),)
                ).fetchone()[0]
            assert copies == 0
