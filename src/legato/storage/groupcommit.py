"""Group commit over one writer connection on one thread, for every SQL adapter.

Every write of a store is a *body*: a function run in a transaction on the writer
connection. While the writer thread commits one transaction, the bodies that arrive
queue up, and the next transaction runs them all, for one commit. One body's error
undoes only that body: the group is then run again with a savepoint per body. Bodies that
say they can (``Joinable``: a start's insert of a new run) are run together, as one
statement for all of them, while their keys differ. An adapter
says how to begin a transaction, whether one is open, which connection writes, and what
its driver's errors mean (``GroupCommit``'s hooks); the queueing is here, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")

MAX_TRANSACTIONS = 1000
"""Bodies committed together at most: a bound on how long the first one waits."""


class Joinable:
    """A body that can run joined with the bodies of its type queued next to it: ``keys``
    (what it writes; bodies that share one are not joined, so each still sees the
    others' writes in order) and ``joined`` (one function for them all, returning each
    one's result). Fifty starts queued together are then one insert, not fifty round
    trips on the writer's connection."""

    keys: frozenset[str]

    def __call__(self, conn: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def joined(cls, bodies: list[Any]) -> Callable[[Any], list[Any]]:
        raise NotImplementedError


def _joined(bodies: list[Callable[[Any], Any]]) -> list[tuple[Callable[[Any], Any], int]]:
    """``bodies`` as functions to run in order, each with how many bodies it stands for
    (more than one: it returns a list of their results)."""
    out: list[tuple[Callable[[Any], Any], int]] = []
    run: list[Joinable] = []
    keys: set[str] = set()

    def flush() -> None:
        if len(run) == 1:
            out.append((run[0], 1))
        elif run:
            out.append((type(run[0]).joined(list(run)), len(run)))
        run.clear()
        keys.clear()

    for body in bodies:
        if not isinstance(body, Joinable):
            flush()
            out.append((body, 1))
            continue
        if run and (type(body) is not type(run[0]) or not keys.isdisjoint(body.keys)):
            flush()
        run.append(body)
        keys.update(body.keys)
    flush()
    return out


class GroupCommit:
    """Queues write bodies and commits them in groups on the adapter's writer thread."""

    _queued: list[tuple[Callable[[Any], Any], asyncio.Future[Any]]]
    _committer: asyncio.Task[None] | None

    # -- what the adapter supplies -------------------------------------------------------

    begin_sql: str = "BEGIN"
    """The statement that opens a write transaction."""

    def _writer_connection(self) -> Any:
        """The connection bodies run on (on the writer thread; may reconnect)."""
        raise NotImplementedError

    def _in_transaction(self, conn: Any) -> bool:
        """True while ``conn`` has a transaction open that can still be rolled back."""
        raise NotImplementedError

    def _write_error(self, exc: BaseException) -> BaseException:
        """What a body's (or the transaction's) error means to the caller."""
        return exc

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the writer thread."""
        raise NotImplementedError

    def _writes_refused(self) -> BaseException | None:
        """Why no write can be queued now (not open, read-only), or None."""
        raise NotImplementedError

    # -- group commit ----------------------------------------------------------------------

    def _init_group_commit(self) -> None:
        self._queued = []
        self._committer = None

    async def _transact(self, body: Callable[[Any], T]) -> T:
        """Run ``body`` in a write transaction, committed together with concurrent ones."""
        refused = self._writes_refused()
        if refused is not None:
            raise refused
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append((body, future))
        if self._committer is None or self._committer.done():
            self._committer = loop.create_task(self._commit_queued())
        return cast(T, await future)

    async def _wait_for_commits(self) -> None:
        """Wait until the writes already asked for are committed (or failed)."""
        committer = self._committer
        if committer is not None and not committer.done():
            await asyncio.wait({committer})

    async def _commit_queued(self) -> None:
        while self._queued:
            batch = self._queued[:MAX_TRANSACTIONS]
            del self._queued[:MAX_TRANSACTIONS]
            try:
                outcomes = await self._write(self._tx_many, [body for body, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch + self._queued:
                    future.cancel()
                self._queued.clear()
                raise
            except Exception as exc:  # the transaction as a whole failed: so did each body
                outcomes = [(False, exc)] * len(batch)
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():  # its caller stopped waiting
                    continue
                if ok:
                    future.set_result(value)
                else:
                    error = self._write_error(value)
                    if error is not value and error.__cause__ is None:
                        error.__cause__ = value
                    future.set_exception(error)

    def _tx_many(self, bodies: list[Callable[[Any], Any]]) -> list[tuple[bool, Any]]:
        """Run ``bodies`` in one transaction; per body, (True, result) or (False, error)."""
        if len(bodies) == 1:
            try:
                return [(True, self._tx(bodies[0]))]
            except Exception as exc:
                return [(False, exc)]
        conn = self._writer_connection()
        # Optimistically: no savepoints (on PostgreSQL each is a round trip, two per body),
        # since bodies rarely fail. If one does, the transaction is rolled back and run
        # again with a savepoint per body, so only that body's write is lost.
        conn.execute(self.begin_sql)
        try:
            results: list[Any] = []
            for fn, count in _joined(bodies):
                if count == 1:
                    results.append(fn(conn))
                else:
                    results.extend(fn(conn))
        except Exception:
            self._rollback(conn)
        except BaseException:
            self._rollback(conn)
            raise
        else:
            try:
                conn.execute("COMMIT")
            except BaseException:
                self._rollback(conn)
                raise
            return [(True, result) for result in results]
        outcomes: list[tuple[bool, Any]] = []
        conn.execute(self.begin_sql)
        try:
            for body in bodies:
                conn.execute("SAVEPOINT body")
                try:
                    outcomes.append((True, body(conn)))
                except Exception as exc:
                    if not self._in_transaction(conn):
                        raise  # the whole transaction is gone (disk full, connection lost)
                    conn.execute("ROLLBACK TO body")
                    outcomes.append((False, exc))
                conn.execute("RELEASE body")
            conn.execute("COMMIT")
        except BaseException:
            self._rollback(conn)
            raise
        return outcomes

    def _tx(self, body: Callable[[Any], T]) -> T:
        conn = self._writer_connection()
        conn.execute(self.begin_sql)
        try:
            result = body(conn)
            conn.execute("COMMIT")
        except BaseException:
            self._rollback(conn)
            raise
        return result

    def _rollback(self, conn: Any) -> None:
        # The database may have rolled back already (SQLite on a full disk, a connection
        # that broke): a second ROLLBACK would fail, and its error would hide the one that
        # says what happened.
        if self._in_transaction(conn):
            try:
                conn.execute("ROLLBACK")
            except Exception:
                if self._in_transaction(conn):
                    raise
