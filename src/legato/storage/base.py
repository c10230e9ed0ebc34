"""The ``Store`` port: the primitives the engine needs from a database.

A store applies batches of writes atomically and answers a handful of reads. It holds
no policy: what a cancel, a resume, a task answer or a signal *means* (which records to
append, which status follows, when a run wakes) is decided in ``legato.lifecycle`` and
``legato.engine`` and written as a batch of the primitive ops below. Retries, leases,
ordering and compensation live there too. Every adapter (``memory``, ``sqlite``, later
``postgres``) passes the same contract suite in ``tests/contract``.

The write ops are primitives: insert unless it exists (``NewRun``, ``NewTask``), append
at a position (``Append``), insert (``NewSignal``), and updates guarded by what the row
holds (``SetRun``, ``UpdateRun``, ``UpdateTask``, ``CloseTasks``). A guard that fails is
either a conflict (the whole batch raises ``ConcurrencyConflict`` and writes nothing) or,
for an op marked ``required=False``, a condition (that op changes nothing).

Times cross this port as float Unix seconds (UTC) on the write side, where the engine is
hot, and as aware ``datetime`` on the read side, where callers want to show them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from legato.model import HistoryEvent, Run, Signal, Task
from legato.model.alerts import Alert
from legato.model.deliveries import (
    ClaimedDelivery,
    Delivery,
    StoredEvent,
    SubscriptionInfo,
)
from legato.model.expectations import Arrival, ExpectationInstance
from legato.model.tokens import ApiToken
from legato.model.workers import WorkerInfo as WorkerInfo  # re-exported: adapters build it
from legato.storage.busops import (  # re-exported: the bus's, expectations' and alerts' ops
    NewArrival as NewArrival,
)
from legato.storage.busops import NewDelivery as NewDelivery
from legato.storage.busops import NewEvent as NewEvent
from legato.storage.busops import NewExpectation as NewExpectation
from legato.storage.busops import NewSubscription as NewSubscription
from legato.storage.busops import RaiseAlert as RaiseAlert
from legato.storage.busops import ReplayDelivery as ReplayDelivery
from legato.storage.busops import ResolveAlert as ResolveAlert
from legato.storage.busops import UpdateDelivery as UpdateDelivery
from legato.storage.busops import UpdateExpectation as UpdateExpectation

SCHEMA_VERSION = 10
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
    correlation_id: str | None = None  # None: the run's own id
    traceparent: str | None = None  # W3C trace context its spans continue, if traced

    def __post_init__(self) -> None:
        # Kept to the microsecond, as every answer shows it (a datetime): a search from a
        # run's own answered created_at then finds it (since), and leaves it out (until).
        self.created_at = round(self.created_at, 6)


@dataclass(slots=True)
class Append:
    """Append one history record. ``(run_id, pos)`` is unique: a second writer conflicts.

    With ``owner`` set the record is fenced: the batch raises ``ConcurrencyConflict`` and
    writes nothing unless the run's owner is ``owner`` when the batch begins (a run the
    same batch creates is exempt). A worker that lost a run to another, and does not
    know it yet, cannot add a record the new owner's replay would then take as its own.
    """

    run_id: str
    pos: int
    kind: str
    key: str | None
    name: str | None
    attempt: int
    data: bytes | None
    at: float
    owner: str | None = None


@dataclass(slots=True)
class SetRun:
    """Overwrite a run's mutable columns (the engine's hot path: one per step batch).

    ``wake_at`` is when the run is next due (NULL: only an event wakes it). With
    ``release`` the owner lets go of the run. An unknown run is left alone.

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
    owner: str | None = None
    # The run's error by reference: the position of the record (of this run's history)
    # whose data is the error, so it is stored once. Reads give that data as ``error``
    # when ``error`` is NULL.
    error_pos: int | None = None


class Keep(enum.Enum):
    """The type of ``KEEP``: "leave this column as it is"."""

    KEEP = "keep"


KEEP = Keep.KEEP
"""For ``UpdateRun.wake_at``: leave the column as it is (None would clear it)."""


@dataclass(slots=True)
class UpdateRun:
    """Change some of a run's columns, where the run matches every condition given.

    Conditions (each left at its default asks nothing): the run's status is one of
    ``if_status``; its owner is ``if_owner``; it has no owner (``if_unowned``); its
    cancellation flag is ``if_cancel_requested``; a signal with an id above
    ``if_signal_after`` exists for it; its ``wake_at`` is NULL or later than
    ``if_wake_after``.

    Changes (each left at its default changes nothing): ``status``, ``wake_at`` (None
    clears it), ``cancel_requested`` (and with it ``cancel_by``), ``clear_error`` (sets
    ``error`` to NULL) and ``updated_at``. With no change at all the op is a pure guard.

    ``required``: a run that does not match (or does not exist) makes the batch raise
    ``ConcurrencyConflict`` and write nothing. With ``required=False`` the op then simply
    changes nothing: a conditional write.
    """

    run_id: str
    if_status: tuple[str, ...] | None = None
    if_owner: str | None = None
    if_unowned: bool = False
    if_cancel_requested: bool | None = None
    if_signal_after: int | None = None
    if_wake_after: float | None = None
    status: str | None = None
    wake_at: float | Keep | None = KEEP
    cancel_requested: bool | None = None
    cancel_by: str | None = None  # with cancel_requested: who asked (NULL: unknown)
    clear_error: bool = False
    updated_at: float | None = None
    required: bool = True


@dataclass(slots=True)
class NewSignal:
    """Store a signal for a run (its id is above every earlier signal of that run)."""

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


@dataclass(slots=True)
class UpdateTask:
    """Set a task's status, response, completion time and who completed it while its
    status is ``if_status``.

    A task in another status, unknown, or not of run ``run_id``, makes the batch raise
    ``ConcurrencyConflict`` and write nothing.
    """

    run_id: str
    task_id: str
    if_status: str
    status: str
    response: bytes | None
    completed_at: float
    completed_by: str | None = None  # who answered it, when known


Write = (
    NewRun
    | Append
    | SetRun
    | UpdateRun
    | NewSignal
    | NewTask
    | CloseTasks
    | UpdateTask
    | NewEvent
    | UpdateDelivery
    | ReplayDelivery
    | NewExpectation
    | UpdateExpectation
    | NewArrival
    | RaiseAlert
    | ResolveAlert
)

BATCH_ORDER = """A batch is applied in the order given for each run: the ops that name one
``run_id`` take effect in the order they stand. Two freedoms, both unobservable through
this port (tests/contract proves it on every adapter):

- every ``Append`` may be applied before the other ops: appends touch only the history
  table, which no other op reads, and a colliding append fails the whole batch wherever
  it stands;
- ops of different runs may be applied in another order than given, except ops that
  name the same task id: no other op reads or writes another run's row, signals, tasks
  or history. Signal ids grow in the order of each run's signals; between runs of one
  batch their order is not defined;
- the bus ops (``NewEvent``, ``UpdateDelivery``, ``ReplayDelivery``) may be applied in
  another order than the run ops beside them, except that ops naming the same delivery
  (subscription and event ``seq``) keep their order: they touch only the event log and
  the deliveries, which no run op reads, and every ``NewEvent`` guard is checked before
  anything of the batch is applied;
- the expectation ops (``NewExpectation``, ``UpdateExpectation``, ``NewArrival``) and the
  alert ops (``RaiseAlert``, ``ResolveAlert``) touch only their own tables; ops naming
  one instance (or one alert) keep their order."""


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

    def watch(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` (on the caller's loop) when another process wrote work this one
        may claim; returns the function that stops it. A store that cannot tell returns
        a no-op at once: the engine polls."""
        ...

    async def write(self, ops: Sequence[Write]) -> dict[str, str]:
        """Apply ``ops`` in order (see ``BATCH_ORDER``), in one transaction.

        Returns ``{run_id: existing_workflow}`` for every ``NewRun`` whose id already
        existed (those rows are left untouched). Raises ``ConcurrencyConflict`` if an
        ``Append`` collides with an existing record, a guarded ``SetRun`` finds another
        owner, or a required ``UpdateRun`` or an ``UpdateTask`` finds its row otherwise
        than it asks; then nothing of the batch is written.
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
        search: RunSearch | None = None,
    ) -> list[Run]:
        """Runs, newest first (by ``created_at``, then ``run_id``), optionally filtered.

        With ``payloads=False`` the runs' ``input`` and ``output`` are not read (they are
        None): a listing of many runs need not load every run's arguments and result.
        ``search`` narrows further: a time range, a correlation id, a run id prefix, and
        ``before``, the position of the last run of the previous page.
        """

    async def history(self, run_id: str) -> list[HistoryEvent]:
        """A run's history in ``pos`` order (empty for unknown runs)."""

    async def histories(self, run_ids: Sequence[str]) -> dict[str, list[HistoryEvent]]:
        """Histories of many runs at once (recovery loads a thousand runs in one go)."""

    async def last_pos(self, run_id: str) -> int:
        """The ``pos`` of the run's last history record (0 for none, or an unknown run)."""

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

    async def register_worker(
        self,
        worker_id: str,
        host: str,
        pid: int,
        at: float,
        workflows: Sequence[str] = (),
        lease_s: float | None = None,
    ) -> None:
        """Record a worker process, the workflow names it serves and its lease (registered
        again: only its heartbeat moves)."""

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

    async def signals(self, run_id: str, after_id: int = 0) -> list[Signal]:
        """A run's signals with ids above ``after_id``, in delivery order."""

    async def get_task(self, task_id: str) -> Task | None:
        """The task with this id, or None."""

    async def claim_task(self, task_id: str, assignee: str) -> bool:
        """Make ``assignee`` the open task's assignee if it has none or already has that
        one; False, writing nothing, for a task that is unknown, not open, or someone
        else's."""

    async def list_tasks(
        self,
        *,
        status: str | None = "open",
        assignee: str | None = None,
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[Task]:
        """Tasks, oldest first, filtered."""

    async def register_workflows(self, names: Sequence[str], at: float) -> None:
        """Record the workflow names an app serves, so clients can check names."""

    async def list_workflows(self) -> list[str]:
        """Workflow names registered by any app on this database."""

    # -- the event bus -------------------------------------------------------------------

    async def register_subscriptions(
        self, subscriptions: Sequence[NewSubscription], at: float
    ) -> int:
        """Record subscriptions (new, or changed: kind, pattern, ordering); return the
        registry's version afterwards. The version moves only if something changed."""

    async def subscriptions(self) -> tuple[int, list[SubscriptionInfo]]:
        """The registry's version and every registered subscription, by name."""

    async def remove_subscription(self, name: str) -> int | None:
        """Forget subscription ``name`` and every delivery to it (pending, in flight, dead);
        return how many deliveries went, or None if no such subscription is registered.
        The registry's version moves: publishers route without it from now on."""

    async def registry_version(self) -> int:
        """The registry's version alone (a publisher checks it is still current)."""

    async def claim_deliveries(
        self, worker_id: str, now: float, limit: int, subscriptions: Sequence[str]
    ) -> list[ClaimedDelivery]:
        """Take up to ``limit`` pending, unowned, due deliveries of ``subscriptions``,
        earliest due first; of an ordering key only the oldest pending delivery (none while
        an older one of that key is pending, in flight or waiting for a retry).

        Nothing is claimed for a ``worker_id`` without a worker row (as ``claim_runs``).
        """

    async def next_delivery_due(self, subscriptions: Sequence[str]) -> float | None:
        """The earliest ``due_at`` of the deliveries ``claim_deliveries`` could take once
        due: pending, unowned, and not behind an older pending one of their key."""

    async def release_deliveries(self, worker_id: str) -> int:
        """Drop ownership of every delivery ``worker_id`` holds; count them."""

    async def get_event(self, seq: int) -> StoredEvent | None:
        """The event at ``seq`` in the log, or None."""

    async def find_events(self, event_id: str) -> list[StoredEvent]:
        """Events with this id (from any source), oldest first."""

    async def list_events(
        self,
        *,
        type: str | None = None,
        correlation_id: str | None = None,
        run_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        unrouted: bool = False,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[StoredEvent]:
        """Events in log order after ``after_seq``, filtered (recorded in ``[since, until)``;
        ``unrouted``: only those no subscription matched)."""

    async def deliveries(self, seq: int) -> list[Delivery]:
        """Every subscription's delivery of event ``seq``, by subscription."""

    async def list_deliveries(
        self,
        *,
        status: str | None = None,
        subscription: str | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[Delivery]:
        """Deliveries in event order after ``after_seq``, filtered."""

    async def prune_events(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` events recorded before ``before`` that have no pending
        delivery, with their deliveries; return how many events went."""

    # -- expectations -----------------------------------------------------------------------

    async def expectation_instances(
        self, expectation: str, keys: Sequence[str], statuses: Sequence[str] | None = None
    ) -> list[ExpectationInstance]:
        """The instances of ``expectation`` for any of ``keys`` (in ``statuses`` if
        given), oldest first."""

    async def arrivals(self, expectation: str, keys: Sequence[str], since: float) -> list[Arrival]:
        """Events recorded as arrived for ``expectation`` and any of ``keys`` at or after
        ``since``, by ``seq``."""

    async def due_expectations(
        self, expectations: Sequence[str], now: float, limit: int
    ) -> list[ExpectationInstance]:
        """Open instances of ``expectations`` whose deadline is at or before ``now``,
        earliest deadline first."""

    async def claim_due_expectations(
        self, expectations: Sequence[str], now: float, limit: int, hold_until: float
    ) -> list[ExpectationInstance]:
        """Take up to ``limit`` open instances of ``expectations`` past their deadline that
        no worker holds (or whose hold ended before ``now``), holding them until
        ``hold_until``, earliest deadline first: workers firing deadlines at once take
        different instances (``SKIP LOCKED`` on PostgreSQL)."""

    async def next_expectation_due(self, expectations: Sequence[str]) -> float | None:
        """The earliest deadline of an open instance of ``expectations``, or None."""

    async def list_expectations(
        self,
        *,
        expectation: str | None = None,
        status: str | None = None,
        key: str | None = None,
        correlation_id: str | None = None,
        limit: int = 100,
    ) -> list[ExpectationInstance]:
        """Instances, newest first, filtered."""

    # -- alerts -----------------------------------------------------------------------------

    async def list_alerts(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[Alert]:
        """Alerts, latest raised first, filtered."""

    # -- API tokens (the HTTP API's bearer tokens; see legato.server.tokens) --------------

    async def create_token(self, name: str, digest: str, scope: str, at: float) -> bool:
        """Store a token (its secret's digest, never the secret); False, writing nothing,
        if a token of that name exists, revoked or not."""

    async def revoke_token(self, name: str, at: float) -> bool:
        """Revoke the active token ``name``; False if there is none."""

    async def list_tokens(self) -> list[ApiToken]:
        """Every token, revoked ones too, by name."""

    async def find_token(self, digest: str) -> ApiToken | None:
        """The token whose secret has this digest (revoked or not), or None."""

    async def schema_version(self) -> int:
        """The schema version of the database, read from it (a round trip: ``/readyz``)."""

    async def counts(self, now: float) -> StoreCounts:
        """Runs by status, open and violated expectation instances, overdue timers (as of
        ``now``), pending and dead deliveries: the gauges of ``/metrics``."""

    async def get_alerts(self, alert_ids: Sequence[str]) -> list[Alert]:
        """The alerts with these ids (those that exist)."""

    async def quiet_runs(self, before: float, limit: int) -> list[QuietRun]:
        """Unfinished runs with no progress since ``before`` (neither their row nor their
        history changed) that should have moved: pending, running or compensating ones,
        and parked ones whose wake-up time is before ``before``; quietest first."""


@dataclass(frozen=True, slots=True)
class RunSearch:
    """What ``Store.list_runs`` narrows to beyond status and workflow.

    ``created_after`` is inclusive and ``created_before`` exclusive (Unix seconds);
    ``correlation_id`` matches a run's ``correlation`` (its own id when none was stored);
    ``before`` is ``(created_at, run_id)`` of the last run already listed: only runs after
    it in list order (older, or as old with a smaller id) come. The store takes that run's
    ``created_at`` as stored (a time that went through a ``datetime`` lost its last
    digits); the one given counts only for a run that is gone.
    """

    created_after: float | None = None
    created_before: float | None = None
    correlation_id: str | None = None
    run_id_prefix: str | None = None
    before: tuple[float, str] | None = None


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """What ``Store.counts`` finds: the gauges an operator watches, read at a scrape."""

    runs: dict[str, int]
    """Runs by status."""
    expectations: dict[tuple[str, str], int]
    """Expectation instances by (expectation, status), for open and violated ones."""
    overdue_timers: int
    """Parked runs whose wake-up time has passed and that no worker holds."""
    deliveries: dict[tuple[str, str], int]
    """Deliveries by (subscription, status), for pending and dead ones."""
    alerts: dict[str, int]
    """Raised alerts by kind."""


@dataclass(frozen=True, slots=True)
class QuietRun:
    """A run ``Store.quiet_runs`` found: when it last made progress, and when it was due."""

    run_id: str
    workflow: str
    status: str
    progress_at: float
    wake_at: float | None


def to_datetime(ts: float | None) -> datetime | None:
    """Float Unix seconds to an aware UTC datetime (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)
