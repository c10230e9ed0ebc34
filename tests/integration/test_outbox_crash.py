"""The outbox under real crashes: an event is delivered if and only if the transaction that
published it committed, and every committed event reaches every matching subscription.

Publishers and workers are real processes, killed with SIGKILL at each crash point:
after the business write and before its commit; after the commit and before any
delivery; after a handler ran and before its delivery was recorded; after that record.
Handler executions are counted in a separate ledger file (``outbox_app.py``). The engine's
database is a SQLite file, or a PostgreSQL schema in the PostgreSQL pass (the service's
connection then a ``psycopg.Connection``), read directly by the test.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures.db import fresh_database
from tests.integration import outbox_app
from tests.integration.direct_db import DirectDb

import legato
from legato.testing import WorkerProcess

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGET = "tests.integration.outbox_app:app"


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.ledger = tmp_path / "ledger.db"
        self.url = fresh_database(tmp_path)
        with legato.Client(self.url) as client:
            client.list_runs()  # opens the database: creates and migrates the schema
        outbox_app.setup(self.url, str(self.ledger))
        self.db = DirectDb(self.url)
        self.env = {outbox_app.LEDGER_ENV: str(self.ledger)}

    def worker(self, crash_at: str | None = None, **env: str) -> WorkerProcess:
        return WorkerProcess(
            TARGET, self.url, crash_at=crash_at, cwd=str(REPO_ROOT), env={**self.env, **env}
        )

    def publish(self, order_id: str, how: str) -> int:
        """Place an order in a separate process: commit, rollback, or crash before commit."""
        result = subprocess.run(
            [sys.executable, "-m", "tests.integration.outbox_app", self.url, order_id, how],
            cwd=REPO_ROOT,
            capture_output=True,
            timeout=60,
            check=False,
        )
        return result.returncode

    def handled(self) -> Counter[tuple[str, str]]:
        conn = sqlite3.connect(self.ledger)
        try:
            rows = conn.execute("SELECT handler, event_id FROM handled").fetchall()
        finally:
            conn.close()
        return Counter((h, e) for h, e in rows)

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        return self.db.rows(sql)

    def wait_for(self, predicate: object, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.02)

    def ready(self) -> None:
        """Wait until a worker registered both subscriptions (events route to them)."""
        self.wait_for(
            lambda: len(self.rows("SELECT name FROM subscriptions")) == 2, "the subscriptions"
        )

    def settled(self, seq_count: int) -> bool:
        done = self.rows("SELECT count(*) FROM deliveries WHERE status = 'done'")[0][0]
        return bool(done == seq_count)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    made = Setup(tmp_path)
    try:
        yield made
    finally:
        made.db.close()


def test_a_publisher_killed_before_its_commit_publishes_nothing(setup: Setup) -> None:
    assert setup.publish("o-1", "crash") == -signal.SIGKILL
    with setup.worker():
        setup.ready()
        assert setup.publish("o-2", "commit") == 0
        setup.wait_for(lambda: setup.settled(2), "o-2's two deliveries")
    assert setup.rows("SELECT id FROM orders") == [("o-2",)]
    assert [e for _, e in setup.handled()] == ["o-2", "o-2"]
    assert setup.rows("SELECT event_id FROM events WHERE type = 'order.placed'") == [("o-2",)]


def test_a_rolled_back_event_is_never_delivered(setup: Setup) -> None:
    with setup.worker():
        setup.ready()
        assert setup.publish("o-1", "rollback") == 0
        assert setup.publish("o-2", "commit") == 0
        setup.wait_for(lambda: setup.settled(2), "o-2's deliveries")
        time.sleep(0.3)  # a poll or two: nothing more may arrive
    assert {e for _, e in setup.handled()} == {"o-2"}
    assert setup.rows("SELECT id FROM orders") == [("o-2",)]


def test_an_event_committed_while_no_worker_runs_is_delivered_when_one_starts(
    setup: Setup,
) -> None:
    # The publisher dies right after its commit: the event is in the log, undelivered.
    with setup.worker():
        setup.ready()  # registers the subscriptions, then stops
    assert setup.publish("o-1", "commit") == 0
    assert setup.rows("SELECT count(*) FROM deliveries WHERE status = 'pending'") == [(2,)]
    with setup.worker():
        setup.wait_for(lambda: setup.settled(2), "both deliveries")
    assert setup.handled() == Counter({("ship", "o-1"): 1, ("bill", "o-1"): 1})


def test_a_worker_killed_after_a_handler_ran_delivers_again_with_one_effect(
    setup: Setup,
) -> None:
    with setup.worker(**{outbox_app.CRASH_ENV: "ship"}) as worker:
        setup.ready()
        assert setup.publish("o-1", "commit") == 0
        worker.wait_for_crash()
        worker.env = setup.env  # no crash the second time
        worker.restart()
        setup.wait_for(
            lambda: setup.settled(2), "ship and bill (nobody subscribes to shipment.created)"
        )
    handled = setup.handled()
    assert handled[("ship", "o-1")] == 2  # at least once: it ran again after the kill
    assert setup.rows("SELECT order_id FROM shipments") == [("o-1",)]  # one effect
    assert setup.rows("SELECT count(*) FROM events WHERE type = 'shipment.created'") == [(1,)]


def test_a_worker_killed_after_a_delivery_was_recorded_does_not_deliver_it_again(
    setup: Setup,
) -> None:
    with setup.worker(crash_at="after_delivery:bill") as worker:
        setup.ready()
        assert setup.publish("o-1", "commit") == 0
        worker.wait_for_crash()
        worker.restart()
        setup.wait_for(lambda: setup.settled(2), "every delivery")
        time.sleep(0.3)
    assert setup.handled()[("bill", "o-1")] == 1


def test_every_committed_event_reaches_every_subscription_across_a_killed_worker(
    setup: Setup,
) -> None:
    committed = [f"o-{i}" for i in range(0, 40, 2)]
    with setup.worker() as worker:
        setup.ready()
        for i in range(40):
            how = "commit" if i % 2 == 0 else "rollback"
            assert setup.publish(f"o-{i}", how) == 0
            if i == 20:
                assert worker.process is not None
                worker.process.send_signal(signal.SIGKILL)
                worker.process.wait()
                worker.start()
        setup.wait_for(
            lambda: setup.settled(len(committed) * 2), "every committed event's deliveries"
        )
    handled = setup.handled()
    for order in committed:
        assert handled[("ship", order)] >= 1 and handled[("bill", order)] >= 1, order
    assert {e for _, e in handled} == set(committed)  # no rolled-back event, ever
    assert sorted(r[0] for r in setup.rows("SELECT order_id FROM shipments")) == sorted(committed)


def test_concurrent_publishers_lose_no_event_to_each_others_commits(setup: Setup) -> None:
    # Four processes commit at once while a worker delivers: delivery rows, not a
    # "position > last seen" cursor, so no commit order can make one skipped.
    with setup.worker():
        setup.ready()
        publishers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.outbox_app",
                    setup.url,
                    f"p{k}",
                    "commit",
                    "25",
                ],
                cwd=REPO_ROOT,
            )
            for k in range(4)
        ]
        assert [p.wait(timeout=120) for p in publishers] == [0, 0, 0, 0]
        setup.wait_for(lambda: setup.settled(4 * 25 * 2), "every delivery")
    handled = setup.handled()
    orders = {f"p{k}-{i}" for k in range(4) for i in range(25)}
    assert {e for h, e in handled if h == "ship"} == orders
    assert {e for h, e in handled if h == "bill"} == orders
