"""Group commit: many runs' records, one transaction.

Runs hand their writes to the journal and await the batch they landed in. While the
store commits one batch (fsync included), the next fills up, so a thousand concurrent
runs pay for a handful of commits rather than a thousand.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from legato.errors import ConcurrencyConflict, StorageError
from legato.storage.base import Store, Write

log = logging.getLogger(__name__)

MAX_BATCH = 1000
"""Ops per transaction at most. Smaller batches let the writer start committing while
the loop still produces the rest (a pipeline); larger ones pay fewer fsyncs."""


@dataclass(slots=True)
class BatchOutcome:
    """What happened to one committed batch."""

    conflicts: dict[str, str] = field(default_factory=dict)
    """``NewRun`` ids that already existed, with the workflow they belong to."""
    failed: dict[str, BaseException] = field(default_factory=dict)
    """Runs whose writes could not be committed, with the error."""


class _BatchFuture(asyncio.Future[BatchOutcome]):
    """A batch's future, shared by every waiter in the batch: it cannot be cancelled.

    A waiter cancelled while it waits (cancel, timeout, shutdown) must not cancel the
    future for everyone else; and its own CancelledError is best delivered once the
    commit it waits for is done. With ``cancel()`` refused, asyncio does exactly that.
    """

    def cancel(self, msg: object = None) -> bool:
        return False


class _Batch:
    """Ops that commit together, and the future their waiters hold."""

    __slots__ = ("future", "ops", "taken")

    def __init__(self) -> None:
        self.ops: list[Write | None] = []  # None: retracted
        self.future: asyncio.Future[BatchOutcome] | None = None
        self.taken = False


class Journal:
    """Batches writes from concurrent runs into single store transactions.

    Batches form a queue; each holds at most ``MAX_BATCH`` ops and has its own future, so
    a waiter is told "committed" only when the batch holding its ops has committed.
    """

    def __init__(
        self,
        store: Store,
        on_failed: Callable[[dict[str, BaseException]], None],
        on_committed: Callable[[list[Write]], None] | None = None,
        on_writing: Callable[[list[Write]], None] | None = None,
    ) -> None:
        self._store = store
        self._on_failed = on_failed
        self._on_committed = on_committed
        self._on_writing = on_writing
        self._queue: deque[_Batch] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        """Start committing in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="legato-journal")

    async def stop(self) -> None:
        """Commit what is pending, then stop."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed (or failed)."""
        while self._queue or not self._idle.is_set():
            await self._idle.wait()
            if self._queue:
                await asyncio.sleep(0)

    @property
    def is_idle(self) -> bool:
        """True when nothing is queued or being committed."""
        return self._idle.is_set() and not self._queue

    async def wait_idle(self) -> None:
        """Return when nothing is queued or being committed."""
        await self.flush()

    def _batch_for(self, count: int) -> _Batch:
        """The open batch if ``count`` more ops fit in it (they must commit together)."""
        if self._queue:
            batch = self._queue[-1]
            if len(batch.ops) + count <= MAX_BATCH or not batch.ops:
                return batch
        batch = _Batch()
        self._queue.append(batch)
        if self._idle.is_set():
            self._idle.clear()
            self._wakeup.set()
        return batch

    def submit_nowait(self, op: Write) -> tuple[_Batch, int]:
        """Queue ``op`` without waiting; it commits with or before the next awaited write.

        Returns a ticket for ``retract``.
        """
        batch = self._batch_for(1)
        batch.ops.append(op)
        return batch, len(batch.ops) - 1

    def retract(self, ticket: tuple[_Batch, int], op: Write) -> bool:
        """Drop a queued op if its batch has not been taken yet; True if dropped.

        A step's ``step_started`` record is worth writing only if the step is still running
        when the batch commits; a fast step's completion record says it all.
        """
        batch, index = ticket
        if not batch.taken and batch.ops[index] is op:
            batch.ops[index] = None
            return True
        return False

    def submit(self, *ops: Write) -> asyncio.Future[BatchOutcome]:
        """Queue ``ops`` (in one batch); the future resolves when that batch commits.

        With no ops, the future is the open batch's: it resolves once everything queued
        so far has committed.
        """
        batch = self._batch_for(len(ops))
        batch.ops.extend(ops)
        if batch.future is None:
            batch.future = _BatchFuture()
        return batch.future

    async def commit(self, ops: Sequence[Write], run_id: str) -> BatchOutcome:
        """Queue ``ops`` and wait for their batch; raise if ``run_id``'s writes failed."""
        outcome = await self.submit(*ops)
        error = outcome.failed.get(run_id)
        if error is not None:
            raise error
        return outcome

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                # Let the runs woken by the last commit write their next records first:
                # they join this batch instead of each paying for a commit of their own.
                await asyncio.sleep(0)
                batch = self._queue.popleft()
                batch.taken = True
                ops = [op for op in batch.ops if op is not None]
                if self._on_writing is not None:
                    self._on_writing(ops)
                outcome = await self._write(ops) if ops else BatchOutcome()
                if outcome.failed:
                    self._on_failed(outcome.failed)
                if self._on_committed is not None:
                    self._on_committed([op for op in ops if op.run_id not in outcome.failed])
                if batch.future is not None and not batch.future.done():
                    batch.future.set_result(outcome)
            self._idle.set()

    async def _write(self, batch: list[Write]) -> BatchOutcome:
        try:
            return BatchOutcome(conflicts=await self._store.write(batch))
        except Exception as exc:
            if len({op.run_id for op in batch}) == 1:
                return BatchOutcome(failed={batch[0].run_id: _as_storage_error(exc)})
            # A guard that lost a race (a deadline and its awaited event, two workers on
            # one instance) is routine; anything else is worth a warning.
            level = logging.INFO if isinstance(exc, ConcurrencyConflict) else logging.WARNING
            log.log(level, "batch of %d writes failed (%s); retrying run by run", len(batch), exc)
        # One run's bad write must not sink everyone else's: isolate it.
        outcome = BatchOutcome()
        by_run: dict[str, list[Write]] = {}
        for op in batch:
            by_run.setdefault(op.run_id, []).append(op)
        for run_id, ops in by_run.items():
            try:
                outcome.conflicts.update(await self._store.write(ops))
            except Exception as exc:
                outcome.failed[run_id] = _as_storage_error(exc)
        return outcome


def _as_storage_error(exc: Exception) -> StorageError:
    if isinstance(exc, StorageError):
        return exc
    error = StorageError(f"could not write to the database: {exc}")
    error.__cause__ = exc
    return error
