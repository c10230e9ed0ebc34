"""Delivering events: claim due deliveries, call each subscription's handler, settle them.

The policy of delivery lives here, once: at-least-once (a delivery is settled only after
its handler returned, so a crash before the settle commits delivers it again), retries
with the subscription's backoff, then a dead letter with the error and traceback kept;
FIFO per ordering key (the store gives only the oldest pending delivery of a key, so a
key's events go one at a time while other keys go at once); and triggers, whose delivery
creates the workflow run in the same transaction that settles it.

Deliveries reach a worker two ways: claimed from the database (``claim``), or handed over
straight after the commit that wrote them, when the publisher is a worker that serves the
subscription (``take``): such a delivery was written already owned by it, and costs no
claim round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections import deque
from collections.abc import Mapping
from contextvars import ContextVar, copy_context
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from legato.bus import expectations
from legato.bus.expectations import Expectation
from legato.bus.subscriptions import (
    DeliveryInfo,
    Subscription,
    current_delivery,
    idempotency_key,
    triggered_run_id,
)
from legato.errors import MAX_ERROR_MESSAGE, ConcurrencyConflict, describe_exception
from legato.model.deliveries import DeliveryStatus, SubscriptionKind
from legato.model.events import Event
from legato.model.payloads import dumps
from legato.model.runs import RunStatus
from legato.observability import tracing
from legato.storage.base import NewEvent, NewRun, UpdateDelivery, Write

if TYPE_CHECKING:
    from legato.engine.worker import Engine

log = logging.getLogger(__name__)

_PENDING = DeliveryStatus.PENDING.value
_DONE = DeliveryStatus.DONE.value
_DEAD = DeliveryStatus.DEAD.value
_MAX_TRACEBACK = 16_384
_EXPECT_ATTEMPTS = 3  # decisions per delivery when a deadline keeps racing it


@dataclass(slots=True)
class HandlerScope:
    """What ``legato.publish`` inside a handler needs: the engine, and how many events
    this attempt published so far (their ids count from it, the same on every attempt)."""

    engine: Engine
    info: DeliveryInfo
    published: int = 0


current_handler: ContextVar[HandlerScope | None] = ContextVar("legato_handler", default=None)


@dataclass(slots=True)
class _Work:
    subscription: Subscription
    seq: int
    attempts: int  # ended before this one
    replay: bool
    event: Event
    obj: Mapping[str, Any] | None  # the event's structured JSON, when at hand


class Consumer:
    """Delivers the subscriptions of one engine, with at most ``concurrency`` handlers
    running at once and at most ``max_in_flight`` deliveries held."""

    def __init__(
        self,
        engine: Engine,
        subscriptions: Mapping[str, Subscription],
        *,
        concurrency: int = 64,
        max_in_flight: int = 10_000,
    ) -> None:
        self.engine = engine
        self.subscriptions = dict(subscriptions)
        self.names = list(self.subscriptions)
        self.concurrency = concurrency
        self.max_in_flight = max_in_flight
        self.in_flight = 0  # held here: queued, or being handled, not yet settled
        self.running = 0  # handlers being called now
        self._queue: deque[_Work] = deque()
        # Serving tasks with nothing to do, each waiting on its own future: a push wakes
        # one of them (an asyncio.Event would wake all 64 for every delivery).
        self._idle: deque[asyncio.Future[None]] = deque()
        self._workers: list[asyncio.Task[None]] = []
        # Expectation deliveries waiting for the next group decision, and the groups
        # being decided.
        self._expecting: list[_Work] = []
        self._deciding: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivering tasks (none without subscriptions)."""
        if not self.subscriptions:
            return
        loop = asyncio.get_running_loop()
        self._workers = [
            loop.create_task(self._serve(), name=f"legato-delivery-{i}")
            for i in range(self.concurrency)
        ]

    async def stop(self) -> None:
        """Stop delivering. What is held here stays owned until the worker's row goes
        (``Engine.stop`` removes it, which lets go of its deliveries): redelivered later."""
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        self._queue.clear()
        for task in list(self._deciding):  # a decision in flight: its delivery is redelivered
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._expecting.clear()

    @property
    def is_idle(self) -> bool:
        """Nothing queued for a handler or an expectation. A handler already running counts
        as quiet, as a step in flight does: it may wait on real I/O (or on the test) for
        any time."""
        return not self._queue and not self._expecting

    # -- where deliveries come from ----------------------------------------------------------

    def owner_of(self, subscription: str) -> str | None:
        """For a publish from this worker: claim the new delivery to ``subscription`` as it
        is written, if this worker serves it and has room (else it is left for a claim)."""
        if subscription in self.subscriptions and self.in_flight < self.max_in_flight:
            return self.engine.worker_id
        return None

    def take(self, op: NewEvent, event: Event, obj: Mapping[str, Any]) -> None:
        """The publish ``op`` committed: deliver what it wrote as owned by this worker."""
        if op.seq is None:
            return
        me = self.engine.worker_id
        unclaimed = False
        for d in op.deliveries:
            sub = self.subscriptions.get(d.subscription)
            if sub is None:
                continue
            if d.owner == me:
                self._push(_Work(sub, op.seq, 0, False, event, obj))
            else:
                unclaimed = True  # ordered, or no room: claim it now rather than at a poll
        if unclaimed:
            self.engine.poke()

    async def claim(self) -> bool:
        """Claim due deliveries; True if there may be more to claim at once."""
        room = self.max_in_flight - self.in_flight
        if not self.names or room <= 0:
            return False
        limit = min(room, 1000)
        claimed = await self.engine.store.claim_deliveries(
            self.engine.worker_id, self.engine.clock.time(), limit, self.names
        )
        decoded: dict[int, Event] = {}  # one event, several subscriptions: decoded once
        for c in claimed:
            event = decoded.get(c.seq)
            if event is None:
                event = decoded[c.seq] = Event.from_stored(c.event)
            sub = self.subscriptions.get(c.subscription)
            if sub is not None:
                self._push(_Work(sub, c.seq, c.attempts, c.replay, event, None))
        return len(claimed) == limit

    async def next_due(self) -> float | None:
        """When the earliest free delivery of these subscriptions is due (FakeClock)."""
        return await self.engine.store.next_delivery_due(self.names)

    def _push(self, work: _Work) -> None:
        self.in_flight += 1
        if work.subscription.kind is SubscriptionKind.EXPECTATION:
            # Not a handler: decided in groups, off the handlers' concurrency.
            self._expecting.append(work)
            if len(self._expecting) == 1:
                asyncio.get_running_loop().call_soon(self._decide_expecting)
            return
        self._queue.append(work)
        idle = self._idle
        while idle:
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    # -- delivering ----------------------------------------------------------------------------

    async def _serve(self) -> None:
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            if not queue:
                waiter = loop.create_future()
                self._idle.append(waiter)
                await waiter
                continue
            work = queue.popleft()
            self.running += 1
            try:
                await self._deliver(work)
            except Exception:  # never lose the serving task to a bug in one delivery
                log.exception("delivery of event %d to %r failed", work.seq, work.subscription)
            finally:
                self.running -= 1
                self.in_flight -= 1
                if self.running == 0 and not queue:
                    self.engine.note_quiet()

    async def _deliver(self, work: _Work) -> None:
        sub = work.subscription
        engine = self.engine
        attempt = work.attempts + 1
        if sub.kind is SubscriptionKind.TRIGGER:
            created = self._submit(self._trigger_ops(work, attempt))
            created.add_done_callback(lambda _: engine.poke())  # claim the new run now
            return
        info = DeliveryInfo(
            sub.name, work.event, attempt, idempotency_key(sub.name, work.event), work.replay
        )
        try:
            if engine.tracer is None:
                await self._call(sub, info)
            else:
                with tracing.consumer_span(engine.tracer, sub.name, work.event, attempt):
                    await self._call(sub, info)
        except Exception as exc:
            for hook in engine.hooks:
                hook.after_delivery(sub.name, work.event, attempt, exc)
            self._submit([self._failed(work, attempt, exc)])
            return
        for hook in engine.hooks:
            hook.after_delivery(sub.name, work.event, attempt, None)
        settled = self._submit([self._settle(work, _DONE, attempt)])
        if sub.ordered_by is not None:
            # The key's next event is claimable once this settle commits: claim it then.
            settled.add_done_callback(lambda _: engine.poke())

    async def _call(self, sub: Subscription, info: DeliveryInfo) -> None:
        """Call the handler once: ``legato.delivery()`` and ``legato.publish`` see ``info``."""
        scope = HandlerScope(self.engine, info)
        assert sub.handler is not None
        if sub.is_async:
            scope_token = current_handler.set(scope)
            token = current_delivery.set(info)
            try:
                call = sub.handler(info.event)
                if sub.timeout_s is None:
                    await call
                else:
                    await asyncio.wait_for(call, sub.timeout_s)
            finally:
                current_delivery.reset(token)
                current_handler.reset(scope_token)
            return
        context = copy_context()
        context.run(current_handler.set, scope)
        context.run(current_delivery.set, info)
        future = self.engine.steps.threads.submit(
            lambda: context.run(sub.handler, info.event),  # type: ignore[arg-type]
            _nothing,
        )
        if sub.timeout_s is None:
            await future
        else:
            await asyncio.wait_for(future, sub.timeout_s)

    def _settle(
        self,
        work: _Work,
        status: str,
        attempts: int,
        due_at: float | None = None,
        error: bytes | None = None,
        batch_key: str | None = None,
    ) -> UpdateDelivery:
        sub = work.subscription.name
        return UpdateDelivery(
            batch_key or _settle_batch(work),
            sub,
            work.seq,
            status,
            attempts,
            due_at,
            error,
            self.engine.clock.time(),
            if_owner=self.engine.worker_id,
        )

    def _failed(self, work: _Work, attempt: int, exc: BaseException) -> UpdateDelivery:
        retry = work.subscription.retry
        error = describe_exception(exc)
        error["attempt"] = attempt
        text = "".join(traceback.format_exception(exc))
        error["traceback"] = text[-_MAX_TRACEBACK:] if len(text) > _MAX_TRACEBACK else text
        if attempt < retry.max_attempts and retry.is_retryable(exc):
            delay = retry.delay(attempt, self.engine.rng.random()).total_seconds()
            due = self.engine.clock.time() + delay
            # INFO, as a step's retry is silent: a retry is the plan working, not news.
            log.info(
                "delivery of event %d to %r failed (attempt %d of %d), retrying in %.1fs: %s",
                work.seq,
                work.subscription.name,
                attempt,
                retry.max_attempts,
                delay,
                error["message"][:200],
            )
            return self._settle(work, _PENDING, attempt, due, dumps(error))
        log.error(
            "delivery of event %d (%s) to %r failed for good after %d attempt(s): %s; it is a "
            "dead letter now (legato deadletters list)",
            work.seq,
            work.event.type,
            work.subscription.name,
            attempt,
            error["message"][:MAX_ERROR_MESSAGE],
        )
        return self._settle(work, _DEAD, attempt, None, dumps(error))

    def _trigger_ops(self, work: _Work, attempt: int) -> list[Write]:
        """The run the event starts, created with the settle: both commit, or neither."""
        engine = self.engine
        name = work.subscription.workflow
        assert name is not None
        workflow = engine.registry.workflows[name]
        event = work.event
        obj = work.obj if work.obj is not None else event.to_dict()
        now = engine.clock.time()
        run_id = triggered_run_id(name, event)
        run = NewRun(
            run_id,
            name,
            RunStatus.PENDING.value,
            dumps([obj]),
            now,
            None if workflow.timeout_s is None else now + workflow.timeout_s,
            None,
            correlation_id=event.correlationid or event.id,
            traceparent=event.traceparent,  # the run continues the event's trace
        )
        # One batch key for both: if the batch must be retried op group by op group, the
        # run and the settle still go (or fail) together.
        return [run, self._settle(work, _DONE, attempt, batch_key=run_id)]

    def _decide_expecting(self) -> None:
        group, self._expecting = self._expecting, []
        task = asyncio.get_running_loop().create_task(self._decide_group(group))
        self._deciding.add(task)
        task.add_done_callback(self._deciding.discard)

    async def _decide_group(self, group: list[_Work]) -> None:
        """Decide the expectation deliveries of one loop turn together: their instances
        are read in one query and their writes go in one batch, each under its own
        delivery's batch key with its settle (both commit, or neither)."""
        engine = self.engine
        engine.engine_io += 1  # FakeClock.settle waits for it: it reads and writes the store
        try:
            by_exp: dict[str, list[tuple[_Work, int]]] = {}
            for work in group:
                name = work.subscription.expectation or ""
                by_exp.setdefault(name, []).append((work, work.attempts + 1))
            for name, items in by_exp.items():
                try:
                    await self._decide_expectation(engine.registry.expectations.get(name), items)
                except Exception:  # never lose the deliveries to a bug: they are redelivered
                    log.exception(
                        "deciding %d deliveries to expectation %r failed", len(items), name
                    )
        finally:
            self.in_flight -= len(group)
            engine.engine_io -= 1
            if not engine.engine_io:
                engine.note_quiet()

    async def _decide_expectation(
        self, exp: Expectation | None, items: list[tuple[_Work, int]]
    ) -> None:
        """Decide ``items`` (deliveries to ``exp``'s subscription) in one read and one
        batch; one that lost a race with a deadline is decided again on its own."""
        engine = self.engine
        now = engine.clock.time()
        decided: list[tuple[_Work, int, str, expectations.Decision]] = []
        again: list[tuple[_Work, int]] = []
        watched: list[expectations.Seen] = []
        keys: set[str] = set()
        for work, attempt in items:
            batch = _settle_batch(work)
            seen = None
            if exp is not None and not work.replay:  # a replay changes nothing
                obj = work.obj if work.obj is not None else work.event.to_dict()
                seen = expectations.seen(exp, work.event, obj, work.seq, batch, now)
            if seen is None:
                decided.append((work, attempt, batch, expectations.Decision([], [])))
            elif seen.key in keys:  # one decision per key per read: the next sees this one
                again.append((work, attempt))
            else:
                keys.add(seen.key)
                watched.append(seen)
                decided.append((work, attempt, batch, expectations.Decision([], [])))
        try:
            if exp is not None and watched:
                decisions = await expectations.decide_all(engine, exp, watched)
                by_seq = {w.seq: d for w, d in zip(watched, decisions, strict=True)}
                decided = [(w, a, b, by_seq.get(w.seq, d)) for w, a, b, d in decided]
            ops: list[Write] = []
            for work, attempt, batch, decision in decided:
                ops += decision.ops
                ops.append(self._settle(work, _DONE, attempt, batch_key=batch))
            outcome = await self._submit(ops)
        except Exception as exc:  # a read failed: each is tried again on its own
            log.debug("a group of expectation decisions failed (%s): one by one", exc)
            again += [(w, a) for w, a, _, _ in decided]
            decided = []
            outcome = None
        for work, attempt, batch, decision in decided:
            assert outcome is not None
            if outcome.failed.get(batch) is None:
                for op, event, obj in decision.published:
                    self.take(op, event, obj)
            else:
                again.append((work, attempt))
        if decided:
            engine.poke()  # the keys' next events are claimable now
        for work, attempt in again:
            error = await self._decide(work, attempt, exp, _settle_batch(work))
            if error is not None:
                self._submit([self._failed(work, attempt, error)])

    async def _decide(
        self, work: _Work, attempt: int, exp: Expectation | None, batch: str
    ) -> BaseException | None:
        """Decide one delivery on its own, again while a deadline races it; the error
        that stopped it, if any."""
        engine = self.engine
        error: BaseException | None = None
        for _ in range(_EXPECT_ATTEMPTS):
            try:
                decision = expectations.Decision([], [])
                if exp is not None and not work.replay:
                    obj = work.obj if work.obj is not None else work.event.to_dict()
                    seen = expectations.seen(
                        exp, work.event, obj, work.seq, batch, engine.clock.time()
                    )
                    if seen is not None:
                        [decision] = await expectations.decide_all(engine, exp, [seen])
                settle = self._settle(work, _DONE, attempt, batch_key=batch)
                outcome = await self._submit([*decision.ops, settle])
            except Exception as exc:
                error = exc
                break
            error = outcome.failed.get(batch)
            if error is None:
                for op, event, obj in decision.published:
                    self.take(op, event, obj)
                engine.poke()  # the key's next event is claimable now
                return None
            if not isinstance(error, ConcurrencyConflict) and not isinstance(
                error.__cause__, ConcurrencyConflict
            ):
                break
            await engine.router.refresh(engine.store)  # the registry may have moved
        return error

    def _submit(self, ops: list[Write]) -> asyncio.Future[Any]:
        """Queue the settle for the next commit; the delivery stays owned until it lands.

        Not awaited: the handler's work is done, and the batch holds many settles. If the
        settle is refused (this worker lost the delivery meanwhile), the delivery is
        someone else's now: nothing to undo here.
        """
        return self.engine.journal.submit(*ops)


def _nothing() -> None:
    pass


def _settle_batch(work: _Work) -> str:
    """The batch key of ``work``'s settle (and of an expectation's decision about it)."""
    return f"\x00delivery {work.subscription.name} {work.seq}"


def decode_reply(payload: Any) -> Event:
    """The reply event a request's signal carries (its structured JSON)."""
    if isinstance(payload, bytes | str):
        payload = orjson.loads(payload)
    return Event.from_dict(payload)
