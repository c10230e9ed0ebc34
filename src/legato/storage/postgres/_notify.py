"""Wake-ups between processes: ``LISTEN/NOTIFY`` on one channel per Legato schema.

A write that makes work for *another* process (a run nobody holds yet, a signal, a
cancel, an event with deliveries to claim, runs handed back) is followed, after it
committed, by one ``NOTIFY``; every worker ``LISTEN``\\s and pokes its engine, which
claims at once instead of at its next poll. The NOTIFY is a statement of its own, sent
after the commit on a connection of its own, and coalesced (one in flight per process,
one more if something changed meanwhile): PostgreSQL serialises the commits of
transactions that notify, and the hot path of runs (steps, parks, completions) makes no
work for others and sends none.

Polling stays the safety net: a notification lost (the listener reconnecting, a pooler
in transaction mode that drops LISTEN, ``?notify=off``) delays work by one poll, never
loses it. After reconnecting the listener pokes once, for what it may have missed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from legato.loopcalls import LoopCalls
from legato.storage.base import (
    NewEvent,
    NewRun,
    NewSignal,
    ReplayDelivery,
    SetRun,
    UpdateRun,
    Write,
)

log = logging.getLogger("legato.storage.postgres")

_LISTEN_TICK_S = 0.2  # how soon a listener sees that it is asked to stop
_MAX_BACKOFF_S = 5.0


def makes_work_for_others(ops: Sequence[Write]) -> bool:
    """True if ``ops`` left something another process may claim now."""
    return any(_makes_work(op) for op in ops)


def _makes_work(op: Write) -> bool:
    if isinstance(op, NewRun):
        return op.owner is None
    if isinstance(op, NewSignal | ReplayDelivery):
        return True
    if isinstance(op, NewEvent):
        return any(d.owner is None for d in op.deliveries)
    if isinstance(op, UpdateRun):
        return bool(op.cancel_requested) or isinstance(op.wake_at, float | int)
    if isinstance(op, SetRun):
        # Handed back and due now (a worker stopping): another may resume it.
        return op.release and op.wake_at is not None and op.wake_at <= op.updated_at
    return False


class Wakeups:
    """The channel of one schema: listening (a thread) and notifying (coalesced)."""

    def __init__(self, conninfo: str, schema: str, where: str) -> None:
        self.conninfo = conninfo
        self.channel = f"legato_{schema}"[:63]
        self.where = where
        self._watchers: list[tuple[LoopCalls, Callable[[], None]]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: threading.Thread | None = None
        self._sender: psycopg.Connection[Any] | None = None
        self._sending: asyncio.Task[None] | None = None
        self._again = False

    # -- listening -------------------------------------------------------------------

    def watch(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` on the caller's loop whenever a notification arrives."""
        entry = (LoopCalls(asyncio.get_running_loop()), wake)
        with self._lock:
            self._watchers.append(entry)
            if self._listener is None:
                self._stopping.clear()
                self._listener = threading.Thread(
                    target=self._listen, name="legato-pg-listen", daemon=True
                )
                self._listener.start()

        def unwatch() -> None:
            with self._lock:
                if entry in self._watchers:
                    self._watchers.remove(entry)

        return unwatch

    def _wake_all(self) -> None:
        with self._lock:
            watchers = list(self._watchers)
        for mailbox, wake in watchers:
            mailbox.post(wake)  # one wake-up per batch: a burst of NOTIFYs is one poke

    def _listen(self) -> None:
        backoff, outage = 0.1, False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {self.channel}")
                    if outage:
                        log.warning("listening for wake-ups on %s again", self.where)
                        outage = False
                    backoff = 0.1
                    self._wake_all()  # whatever happened while not listening
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=_LISTEN_TICK_S):
                            self._wake_all()
            except Exception as exc:  # the thread must not die: polling would be all left
                if not outage:
                    log.warning(
                        "lost the wake-up listener on %s (%s); polling meanwhile, reconnecting",
                        self.where,
                        " ".join(str(exc).split()),
                        exc_info=not isinstance(exc, psycopg.Error),
                    )
                    outage = True
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)

    # -- notifying -------------------------------------------------------------------

    def changed(self) -> None:
        """Say (soon, once) that there is work for others; call on the event loop."""
        if self._sending is not None and not self._sending.done():
            self._again = True
            return
        self._sending = asyncio.get_running_loop().create_task(self._send_until_quiet())

    async def _send_until_quiet(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._again = False
            await loop.run_in_executor(None, self._notify)
            if not self._again:
                return

    def _notify(self) -> None:
        try:
            if self._sender is None or self._sender.closed or self._sender.broken:
                self._sender = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
            self._sender.execute("SELECT pg_notify(%s, '')", (self.channel,))
        except psycopg.Error as exc:  # polling will find the work: nothing is lost
            log.debug("could not send a wake-up on %s: %s", self.where, exc)
            self._sender = None

    # -- lifecycle -------------------------------------------------------------------

    async def close(self) -> None:
        """Stop listening and sending (waits for the listener to notice, briefly)."""
        if self._sending is not None and not self._sending.done():
            await asyncio.wait({self._sending})
        self._stopping.set()
        listener, self._listener = self._listener, None
        loop = asyncio.get_running_loop()
        if listener is not None:
            await loop.run_in_executor(None, listener.join, 2.0)
        sender, self._sender = self._sender, None
        if sender is not None:
            await loop.run_in_executor(None, sender.close)
