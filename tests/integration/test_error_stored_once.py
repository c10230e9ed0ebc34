"""A run's error is stored once: its row names the history record that holds it.

Read through the API, ``Run.error`` is the same object as before; in the database (a
SQLite file; a PostgreSQL schema in the PostgreSQL pass) the ``runs`` row holds no copy of
it (``error`` NULL, ``error_pos`` the record's position).
"""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.db import fresh_database
from tests.integration.direct_db import DirectDb, as_bytes

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


def rows(url: str, run_id: str) -> tuple[bytes | None, int | None, list[tuple[int, str]]]:
    """The run row's error and error_pos, and the history records holding the message."""
    with DirectDb(url) as db:
        [(error, error_pos)] = db.rows(
            "SELECT error, error_pos FROM runs WHERE run_id = ?", (run_id,)
        )
        records = db.rows(
            "SELECT pos, kind, data FROM history WHERE run_id = ? ORDER BY pos", (run_id,)
        )
    holding = [(pos, kind) for pos, kind, data in records if MESSAGE.encode() in as_bytes(data)]
    return error, error_pos, holding


def copies_in_run_rows(url: str) -> int:
    """How many ``runs`` rows hold the message in their ``error`` column."""
    with DirectDb(url) as db:
        errors = db.rows("SELECT error FROM runs")
    return sum(MESSAGE.encode() in as_bytes(error) for (error,) in errors)


async def test_a_failed_and_a_compensated_run_store_their_error_once(tmp_path: Path) -> None:
    url = fresh_database(tmp_path)
    app = legato.App("shop", url)
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

            # In the database: no copy in the row, which names the run_failed record
            error, error_pos, holding = rows(url, run_id)
            assert error is None
            assert error_pos == failed.pos
            # the message is in the attempt's record and the run's failure, nowhere else
            assert [kind for _, kind in holding] == ["step_failed", "run_failed"]
            assert copies_in_run_rows(url) == 0
