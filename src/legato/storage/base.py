"""The ``Store`` port: the primitives the engine needs from a database.

A store applies batches of writes atomically and answers a handful of reads. It holds
no policy: retries, leases, ordering and compensation live in ``legato.engine``. Every
adapter (``memory``, ``sqlite``, later ``postgres``) passes the same contract suite in
``tests/contract``.

Times cross this port as float Unix seconds (UTC) on the write side, where the engine is
hot, and as aware ``datetime`` on the read side, where callers want to show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from legato.model import HistoryEvent, Run, Signal, Task
from legato.model.workers import WorkerInfo as WorkerInfo  # re-exported: adapters build it

SCHEMA_VERSION = 2
"""The schema version this code writes; stores refuse databases newer than this."""


@dataclass(slots=True)
class NewRun:
    """Insert a run unless one with the same id exists (then report it as a conflict).

    A new run is due at once: its ``wake_at`` is ``created_at``.
    """

    run_id: str
    workflow: str
    status: str
    input: bytes
    created_at: float
    deadline_at: float | None
    owner: str | None
    parent_run_id: str | None = None


@dataclass(slots=True)
class Append:
    """Append one history record. ``(run_id, pos)`` is unique: a second writer conflicts."""

    run_id: str
    pos: int
    kind: str
    key: str | None
    name: str | None
    attempt: int
    data: bytes | None
    at: float


@dataclass(slots=True)
class SetRun:
    """Overwrite a run's mutable columns.

    ``wake_at`` is when the run is next due (NULL: only an event wakes it). With
    ``release`` the owner lets go of the run. With ``signal_watermark`` set, a signal newer
    than that id makes the run due at once: a run that parks while a signal is arriving
    is never left waiting for it. A released run whose cancellation was requested is
    due at once, whatever ``wake_at`` says.

    With ``owner`` set the write is guarded: it applies only while the run's owner is
    ``owner``. A run owned by anyone else (or by nobody, or unknown) makes the batch raise
    ``ConcurrencyConflict`` and write nothing, as a colliding ``Append`` does: a worker
    presumed dead must not move, or let go of, a run that was taken from it.
    """

    run_id: str
    status: str
    output: bytes | None
    error: bytes | None
    updated_at: float
    wake_at: float | None
    release: bool = False
    signal_watermark: int | None = None
    owner: str | None = None


@dataclass(slots=True)
class NewSignal:
    """Send a signal to a run, and wake it if it waits for an event."""

    run_id: str
    name: str
    payload: bytes | None
    at: float


@dataclass(slots=True)
class NewTask:
    """Open a human task (ignored if a task with this id exists)."""

    run_id: str
    task_id: str
    name: str
    data: bytes | None
    assignee: str | None
    form: bytes | None
    created_at: float
    due_at: float | None


@dataclass(slots=True)
class CloseTasks:
    """Close a run's open tasks (one, or all when ``task_id`` is None)."""

    run_id: str
    task_id: str | None
    status: str
    at: float


Write = NewRun | Append | SetRun | NewSignal | NewTask | CloseTasks


class Store(Protocol):
    """Durable storage for runs, their history, workers and registered workflows."""

    async def open(self) -> None:
        """Connect, and create or migrate the schema; refuse foreign or newer databases."""

    async def close(self) -> None:
        """Release connections and threads. Safe to call twice."""

    async def check_location(self) -> None:
        """Raise ``DatabaseMoved`` if the database opened is no longer where it was opened.

        A file store checks that its path still names the file it opened (not deleted or
        replaced underneath it); a store with nothing to check returns at once.
        """

    async def write(self, ops: Sequence[Write]) -> dict[str, str]:
        """Apply ``ops`` in order, in one transaction.

        Returns ``{run_id: existing_workflow}`` for every ``NewRun`` whose id already
        existed (those rows are left untouched). Raises ``ConcurrencyConflict`` if an
        ``Append`` collides with an existing record, or a guarded ``SetRun`` finds another
        owner; then nothing of the batch is written.
        """

    async def get_run(self, run_id: str) -> Run | None:
        """The run with this id, or None."""

    async def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        payloads: bool = True,
    ) -> list[Run]:
        """Runs, newest first, optionally filtered.

        With ``payloads=False`` the runs' ``input`` and ``output`` are not read (they are
        None): a listing of many runs need not load every run's arguments and result.
        """

    async def history(self, run_id: str) -> list[HistoryEvent]:
        """A run's history in ``pos`` order (empty for unknown runs)."""

    async def histories(self, run_ids: Sequence[str]) -> dict[str, list[HistoryEvent]]:
        """Histories of many runs at once (recovery loads a thousand runs in one go)."""

    async def claim_runs(
        self, worker_id: str, now: float, limit: int, workflows: Sequence[str]
    ) -> list[Run]:
        """Take up to ``limit`` unfinished, unowned, due runs of ``workflows``, earliest due
        first.

        Nothing is claimed for a ``worker_id`` that has no worker row (never registered, or
        removed as dead): checked in the same atomic step as the claim, so a worker that
        others presumed dead cannot take runs that nobody would then release.
        """

    async def next_due(self, workflows: Sequence[str]) -> float | None:
        """The earliest ``wake_at`` of unowned, unfinished runs of ``workflows``, or None."""

    async def release_runs(self, worker_id: str, run_ids: Sequence[str] | None = None) -> int:
        """Drop ownership of runs ``worker_id`` owns (all, or only ``run_ids``); count them."""

    async def cancel_requests(self, worker_id: str) -> list[str]:
        """Ids of unfinished runs owned by ``worker_id`` whose cancellation was requested."""

    async def request_cancel(self, run_id: str, at: float) -> Run | None:
        """Flag the run for cancellation; cancel it outright if nobody took it yet.

        A run still ``pending`` and unowned has done nothing, so it becomes ``cancelled``
        at once (with ``cancel_requested`` and ``run_cancelled`` records). An owned run only
        gets the flag: its owner records and carries out the cancellation. An unowned
        waiting run is made due, so a worker picks it up and cancels it; so is a
        ``blocked`` run (cancelling compensates it from its history, without replay).
        Returns the run as it is afterwards, or None if there is no such run.
        """

    async def resume_blocked(self, run_id: str, at: float) -> Run | None:
        """Make a ``blocked`` run due again (recording ``run_resumed``); None if unknown.

        Returns the run as it is afterwards; a run that was not blocked is unchanged.
        """

    async def register_worker(self, worker_id: str, host: str, pid: int, at: float) -> None:
        """Record a worker process (or refresh it)."""

    async def heartbeat(self, worker_id: str, at: float) -> bool:
        """Say that ``worker_id`` is alive; False if it has no row (nothing is written then).

        A missing row means another worker removed it as dead and released its runs; the
        store does not register it again, the engine decides what follows.
        """

    async def list_workers(self) -> list[WorkerInfo]:
        """Every registered worker."""

    async def remove_workers(self, worker_ids: Sequence[str]) -> int:
        """Forget these workers and release every run they owned; return runs released."""

    async def release_orphaned_runs(self) -> int:
        """Release unfinished runs whose owner no worker row names; return how many.

        Such a run would otherwise stay owned forever: its owner was removed as dead (or
        never registered) and wrote the ownership afterwards, so no removal covers it.
        """

    async def send_signal(
        self, run_id: str, name: str, payload: bytes | None, at: float
    ) -> tuple[Run | None, int | None]:
        """Send a signal unless the run is unknown or finished; return (run, signal id)."""

    async def signals(self, run_id: str, after_id: int = 0) -> list[Signal]:
        """A run's signals with ids above ``after_id``, in delivery order."""

    async def get_task(self, task_id: str) -> Task | None:
        """The task with this id, or None."""

    async def list_tasks(
        self,
        *,
        status: str | None = "open",
        assignee: str | None = None,
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[Task]:
        """Tasks, oldest first, filtered."""

    async def complete_task(
        self, task_id: str, response: bytes, at: float
    ) -> tuple[Task | None, bool]:
        """Complete an open task: store the response and signal its run, atomically.

        Returns the task as it is afterwards and whether this call completed it (False if
        it was not open, so a task is completed at most once).
        """

    async def register_workflows(self, names: Sequence[str], at: float) -> None:
        """Record the workflow names an app serves, so clients can check names."""

    async def list_workflows(self) -> list[str]:
        """Workflow names registered by any app on this database."""


def to_datetime(ts: float | None) -> datetime | None:
    """Float Unix seconds to an aware UTC datetime (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)
