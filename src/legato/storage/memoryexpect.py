"""Expectation instances and early arrivals of the in-memory ``Store``, in dicts.

Mixed into ``MemoryStore`` beside ``MemoryBus``: the same contract as SQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import orjson

from legato.errors import ConcurrencyConflict
from legato.model.expectations import Arrival, ExpectationInstance, ExpectationStatus
from legato.storage.base import NewArrival, NewExpectation, UpdateExpectation, Write, to_datetime

_OPEN = ExpectationStatus.OPEN.value


@dataclass(slots=True)
class _InstanceRow:
    op: NewExpectation
    status: str
    missing: bytes
    closed_at: float | None
    closed_by: int | None
    violation_id: str | None = None
    claimed_until: float | None = None  # a worker firing its deadline holds it until then


def _instance(row: _InstanceRow) -> ExpectationInstance:
    op = row.op
    opened, deadline = to_datetime(op.opened_at), to_datetime(op.deadline_at)
    assert opened is not None and deadline is not None
    return ExpectationInstance(
        op.expectation,
        op.instance,
        op.key,
        ExpectationStatus(row.status),
        tuple(orjson.loads(row.missing)),
        op.trigger_seq,
        op.correlation_id,
        opened,
        deadline,
        to_datetime(row.closed_at),
        row.closed_by,
        row.violation_id,
        tuple(orjson.loads(op.awaited)),
    )


def _drop(seen: dict[tuple[str, int], Arrival], key: tuple[str, int]) -> None:
    del seen[key]


class MemoryExpectations:
    """Instances keyed by (expectation, instance), arrivals by (expectation, key)."""

    def _init_expectations(self) -> None:
        self._instances: dict[tuple[str, str], _InstanceRow] = {}
        self._arrivals: dict[tuple[str, str], dict[tuple[str, int], Arrival]] = {}

    def _apply_expectation(self, op: Write, undo: list[Callable[[], None]]) -> bool:
        """Apply ``op`` if it is an expectation op; False if it is not one."""
        if type(op) is NewExpectation:
            ident = (op.expectation, op.instance)
            if ident not in self._instances:
                self._instances[ident] = _InstanceRow(
                    op, op.status, op.missing, op.closed_at, op.closed_by
                )
                undo.append(partial(self._drop_instance, ident))
        elif type(op) is UpdateExpectation:
            row = self._instances.get((op.expectation, op.instance))
            if row is None or row.status != op.if_status:
                raise ConcurrencyConflict(
                    f"expectation {op.expectation!r} instance {op.instance!r} is "
                    f"{'unknown' if row is None else row.status}, not {op.if_status}: it "
                    "moved meanwhile"
                )
            undo.append(partial(self._restore_instance, dataclasses.replace(row)))
            row.status, row.missing = op.status, op.missing
            if op.closed_at is not None:
                row.closed_at = op.closed_at
            if op.closed_by is not None:
                row.closed_by = op.closed_by
            if op.violation_id is not None:
                row.violation_id = op.violation_id
        elif type(op) is NewArrival:
            seen = self._arrivals.setdefault((op.expectation, op.key), {})
            if (op.role, op.seq) not in seen:
                seen[(op.role, op.seq)] = Arrival(op.expectation, op.key, op.role, op.seq, op.at)
                undo.append(partial(_drop, seen, (op.role, op.seq)))
        else:
            return False
        return True

    def _drop_instance(self, ident: tuple[str, str]) -> None:
        del self._instances[ident]

    def _restore_instance(self, saved: _InstanceRow) -> None:
        self._instances[(saved.op.expectation, saved.op.instance)] = saved

    async def expectation_instances(
        self, expectation: str, keys: Sequence[str], statuses: Sequence[str] | None = None
    ) -> list[ExpectationInstance]:
        """The instances of ``expectation`` for any of ``keys``, oldest first."""
        wanted = set(keys)
        rows = [
            r
            for r in self._instances.values()
            if r.op.expectation == expectation
            and r.op.key in wanted
            and (statuses is None or r.status in statuses)
        ]
        rows.sort(key=lambda r: (r.op.opened_at, r.op.instance))
        return [_instance(r) for r in rows]

    async def arrivals(self, expectation: str, keys: Sequence[str], since: float) -> list[Arrival]:
        """Arrivals for ``expectation`` and any of ``keys`` at or after ``since``, by ``seq``."""
        found = [
            a
            for key in dict.fromkeys(keys)
            for a in self._arrivals.get((expectation, key), {}).values()
            if a.at >= since
        ]
        return sorted(found, key=lambda a: (a.seq, a.role))

    async def due_expectations(
        self, expectations: Sequence[str], now: float, limit: int
    ) -> list[ExpectationInstance]:
        """Open instances past their deadline, earliest first."""
        names = set(expectations)
        rows = [
            r
            for r in self._instances.values()
            if r.status == _OPEN and r.op.expectation in names and r.op.deadline_at <= now
        ]
        rows.sort(key=lambda r: r.op.deadline_at)
        return [_instance(r) for r in rows[:limit]]

    async def claim_due_expectations(
        self, expectations: Sequence[str], now: float, limit: int, hold_until: float
    ) -> list[ExpectationInstance]:
        """Open instances past their deadline that no worker holds, held now."""
        names = set(expectations)
        rows = [
            r
            for r in self._instances.values()
            if r.status == _OPEN
            and r.op.expectation in names
            and r.op.deadline_at <= now
            and (r.claimed_until is None or r.claimed_until < now)
        ]
        rows.sort(key=lambda r: r.op.deadline_at)
        for r in rows[:limit]:
            r.claimed_until = hold_until
        return [_instance(r) for r in rows[:limit]]

    async def next_expectation_due(self, expectations: Sequence[str]) -> float | None:
        """The earliest deadline of an open instance, or None."""
        names = set(expectations)
        return min(
            (
                r.op.deadline_at
                for r in self._instances.values()
                if r.status == _OPEN and r.op.expectation in names
            ),
            default=None,
        )

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
        rows = [
            r
            for r in self._instances.values()
            if (expectation is None or r.op.expectation == expectation)
            and (status is None or r.status == status)
            and (key is None or r.op.key == key)
            and (correlation_id is None or r.op.correlation_id == correlation_id)
        ]
        rows.sort(key=lambda r: (r.op.opened_at, r.op.instance), reverse=True)
        return [_instance(r) for r in rows[:limit]]
