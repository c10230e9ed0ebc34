"""An app for the test-kit crash tests: effects counted in a separate SQLite file."""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta

import legato

app = legato.App("kit")


def _effect(step: str) -> None:
    with sqlite3.connect(os.environ["KIT_LEDGER"], timeout=30) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT, step TEXT)")
        conn.execute("INSERT INTO effects VALUES (?, ?)", (legato.step_key(), step))


@app.step
def charge(order: str) -> str:
    _effect("charge")
    return f"paid-{order}"


@app.step
def ship(order: str) -> str:
    _effect("ship")
    return f"shipped-{order}"


@app.workflow
async def order(order_id: str) -> dict[str, str]:
    payment = await charge(order_id)
    await legato.sleep(timedelta(seconds=1))
    shipment = await ship(order_id)
    return {"payment": payment, "shipment": shipment}
