"""The app that ``test_outbox_crash.py`` serves with real ``legato worker`` processes.

Two subscriptions to ``order.placed``: ``ship`` and ``bill``. Each execution of a handler
is counted in a *ledger*, a separate SQLite file (``$OUTBOX_LEDGER``), committed before
the handler goes on, so a handler that runs twice leaves two rows whatever the engine's
database says. ``ship`` also has an effect of its own in the engine's database: a row in
``shipments`` keyed by the delivery's idempotency key, written with the event it
announces (``shipment.created``) in one transaction through ``publish_in_transaction``,
so however often it runs, the shipment and its event exist once.

The engine's database is a SQLite file or a PostgreSQL schema (the service's own tables,
``orders`` and ``shipments``, sit beside Legato's there): the service's connection is a
``sqlite3.Connection`` or a ``psycopg.Connection`` (``direct_db.own_connection``).

``$OUTBOX_CRASH_IN=ship`` makes ``ship`` SIGKILL its process after its effect committed
and before the delivery is recorded (the handler has not returned).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from datetime import timedelta
from typing import Any

from tests.integration.direct_db import own_connection, sql_for

import legato

LEDGER_ENV = "OUTBOX_LEDGER"
CRASH_ENV = "OUTBOX_CRASH_IN"

app = legato.App("outbox")
_lock = threading.Lock()

FAST_RETRY = legato.Retry(max_attempts=3, initial_interval=timedelta(milliseconds=50))


def count(handler: str, event: legato.Event) -> None:
    """One ledger row per execution, committed before returning."""
    with _lock:
        conn = sqlite3.connect(os.environ[LEDGER_ENV], isolation_level=None, timeout=30.0)
        try:
            conn.execute(
                "INSERT INTO handled (handler, event_id, pid) VALUES (?, ?, ?)",
                (handler, event.id, os.getpid()),
            )
        finally:
            conn.close()


@app.on("order.placed", name="ship", retry=FAST_RETRY)
def ship(event: legato.Event) -> None:
    """Create the shipment once, and announce it in the same transaction."""
    count("ship", event)
    key = legato.delivery().idempotency_key
    url = app.database or ""
    conn = own_connection(url)
    try:
        created = conn.execute(
            sql_for(
                url, "INSERT INTO shipments (key, order_id) VALUES (?, ?) ON CONFLICT DO NOTHING"
            ),
            (key, event.data["order"]),
        ).rowcount
        if created:
            app.publish_in_transaction(
                conn, "shipment.created", {"order": event.data["order"]}, id=f"ship:{key}"
            )
        conn.commit()
    finally:
        conn.close()
    if os.environ.get(CRASH_ENV) == "ship":
        os.kill(os.getpid(), signal.SIGKILL)  # effect committed, delivery not recorded


@app.on("order.placed", name="bill", retry=FAST_RETRY)
async def bill(event: legato.Event) -> None:
    count("bill", event)


def setup(database: str, ledger: str) -> None:
    """Create the service's own tables in the engine's database (at URL ``database``), and
    the ledger (a SQLite file)."""
    conn = own_connection(database)
    conn.execute("CREATE TABLE IF NOT EXISTS shipments (key TEXT PRIMARY KEY, order_id TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY)")
    conn.commit()
    conn.close()
    conn = sqlite3.connect(ledger)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS handled (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "handler TEXT, event_id TEXT, pid INTEGER)"
    )
    conn.commit()
    conn.close()


def place_order(database: str, order_id: str, *, commit: bool, crash: bool = False) -> Any:
    """A service's transaction: its ``orders`` row and the ``order.placed`` event together,
    on the database at URL ``database``.

    ``commit=False`` rolls both back; ``crash=True`` SIGKILLs the process before the
    commit (the transaction is open, the writes made).
    """
    client = legato.Client(database)
    conn = own_connection(database)
    conn.execute(sql_for(database, "INSERT INTO orders (id) VALUES (?)"), (order_id,))
    event = client.publish_in_transaction(
        conn, "order.placed", {"order": order_id}, id=order_id, source="/shop"
    )
    if crash:
        os.kill(os.getpid(), signal.SIGKILL)
    if commit:
        conn.commit()
    else:
        conn.rollback()
    conn.close()
    client.close()
    return event


if __name__ == "__main__":
    import sys

    # python -m tests.integration.outbox_app DATABASE_URL ORDER_ID commit|rollback|crash [COUNT]
    # With COUNT: orders ORDER_ID-0 ... ORDER_ID-(COUNT-1), each in its own transaction.
    db, order, how = sys.argv[1:4]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    for name in [f"{order}-{i}" for i in range(count)] if count else [order]:
        place_order(db, name, commit=how == "commit", crash=how == "crash")
