"""Group commit: many runs' records, one transaction.

Runs hand their writes to the journal and await the batch they landed in. While the
store commits one batch (fsync included), the next fills up, so a thousand concurrent
runs pay for a handful of commits rather than a thousand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from legato.errors import StorageError
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


class Journal:
    """Batches writes from concurrent runs into single store transactions."""

    def __init__(self, store: Store, on_failed: Callable[[dict[str, BaseException]], None],
                 on_committed: Callable[[list[Write]], None] | None = None) -> None:
        self._store = store
        self._on_failed = on_failed
        self._on_committed = on_committed
        self._pending: list[Write] = []
        self._generation = 0  # bumped each time a batch is taken from _pending
        self._future: asyncio.Future[BatchOutcome] | None = None
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
        while self._pending or not self._idle.is_set():
            await self._idle.wait()
            if self._pending:
                await asyncio.sleep(0)

    @property
    def is_idle(self) -> bool:
        """True when nothing is queued or being committed."""
        return self._idle.is_set() and not self._pending

    async def wait_idle(self) -> None:
        """Return when nothing is queued or being committed."""
        await self.flush()

    def submit(self, op: Write) -> asyncio.Future[BatchOutcome]:
        """Queue ``op``; the returned future resolves when its batch commits."""
        self._pending.append(op)
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
            self._idle.clear()
            self._wakeup.set()
        return self._future

    def submit_nowait(self, op: Write) -> tuple[int, int]:
        """Queue ``op`` without waiting; it commits with or before the next awaited write.

        Returns a ticket for ``retract``.
        """
        self._pending.append(op)
        if self._idle.is_set():
            self._idle.clear()
            self._wakeup.set()
        return self._generation, len(self._pending) - 1

    def retract(self, ticket: tuple[int, int], op: Write) -> bool:
        """Drop a queued op if its batch has not been taken yet; True if dropped.

        A step's ``step_started`` record is worth writing only if the step is still running
        when the batch commits; a fast step's completion record says it all.
        """
        generation, index = ticket
        if generation == self._generation and self._pending[index] is op:
            self._pending[index] = None  # type: ignore[call-overload]  # skipped in _run
            return True
        return False

    async def commit(self, ops: Sequence[Write], run_id: str) -> BatchOutcome:
        """Queue ``ops`` and wait for their batch; raise if ``run_id``'s writes failed."""
        for op in ops[:-1]:
            self._pending.append(op)
        outcome = await self.submit(ops[-1])
        error = outcome.failed.get(run_id)
        if error is not None:
            raise error
        return outcome

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                # Let the runs woken by the last commit write their next records first:
                # they join this batch instead of each paying for a commit of their own.
                await asyncio.sleep(0)
                if len(self._pending) > MAX_BATCH:
                    # The rest waits for the next batch, under a future of its own.
                    batch = [op for op in self._pending[:MAX_BATCH] if op is not None]
                    self._pending = self._pending[MAX_BATCH:]
                    future = self._future
                    self._future = asyncio.get_running_loop().create_future()
                else:
                    batch, future = [op for op in self._pending if op is not None], self._future
                    self._pending, self._future = [], None
                self._generation += 1
                outcome = await self._write(batch)
                if outcome.failed:
                    self._on_failed(outcome.failed)
                if self._on_committed is not None:
                    self._on_committed([op for op in batch if op.run_id not in outcome.failed])
                if future is not None and not future.done():
                    future.set_result(outcome)
            self._idle.set()

    async def _write(self, batch: list[Write]) -> BatchOutcome:
        try:
            return BatchOutcome(conflicts=await self._store.write(batch))
        except Exception as exc:
            if len({op.run_id for op in batch}) == 1:
                return BatchOutcome(failed={batch[0].run_id: _as_storage_error(exc)})
            log.warning("batch of %d writes failed (%s); retrying run by run", len(batch), exc)
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
