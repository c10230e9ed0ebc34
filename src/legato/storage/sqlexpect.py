"""Expectation instances and early arrivals on every SQL adapter: the ops and the reads.

``SqlStore`` mixes this in. What an event or a deadline *means* for an instance is
decided in ``legato.bus.expectations`` and written as these ops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from legato.errors import ConcurrencyConflict
from legato.model.expectations import Arrival, ExpectationInstance
from legato.storage.base import NewArrival, NewExpectation, UpdateExpectation
from legato.storage.sqlrows import expectation_from_row

_CHUNK = 500  # keys per query: well under every SQL dialect's parameter limit


def apply_new_expectations(conn: Any, queries: Any, ops: Sequence[NewExpectation]) -> None:
    """Insert instances; one that exists already is left as it is."""
    conn.executemany(
        queries.insert_expectation,
        [
            (
                op.expectation,
                op.instance,
                op.key,
                op.status,
                op.missing,
                op.trigger_seq,
                op.correlation_id,
                op.opened_at,
                op.deadline_at,
                op.closed_at,
                op.closed_by,
                op.awaited,
            )
            for op in ops
        ],
    )


def apply_expectation_updates(conn: Any, queries: Any, ops: Sequence[UpdateExpectation]) -> None:
    """Update instances still in their ``if_status``; any other makes the batch raise."""
    for op in ops:
        changed = conn.execute(
            queries.update_expectation,
            (
                op.status,
                op.missing,
                op.closed_at,
                op.closed_by,
                op.violation_id,
                op.expectation,
                op.instance,
                op.if_status,
            ),
        ).rowcount
        if changed != 1:
            raise ConcurrencyConflict(
                f"expectation {op.expectation!r} instance {op.instance!r} is not "
                f"{op.if_status} (or unknown): it moved meanwhile"
            )


def apply_arrivals(conn: Any, queries: Any, ops: Sequence[NewArrival]) -> None:
    """Record arrivals; a recorded one is left as it is."""
    conn.executemany(
        queries.insert_arrival,
        [(op.expectation, op.key, op.role, op.seq, op.at) for op in ops],
    )


T = TypeVar("T")


class SqlExpectations:
    """The expectation reads of every SQL adapter (mixed into ``SqlStore``)."""

    queries: Any

    async def _select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def _transact(self, body: Callable[[Any], T]) -> T:
        raise NotImplementedError

    async def expectation_instances(
        self, expectation: str, keys: Sequence[str], statuses: Sequence[str] | None = None
    ) -> list[ExpectationInstance]:
        """The instances of ``expectation`` for any of ``keys`` (in ``statuses``), oldest
        first."""
        unique = list(dict.fromkeys(keys))
        found: list[ExpectationInstance] = []
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            sql = self.queries.expectations_of_keys_sql(len(chunk))
            found += [
                expectation_from_row(r) for r in await self._select(sql, (expectation, *chunk))
            ]
        found.sort(key=lambda i: (i.opened_at, i.instance))
        return found if statuses is None else [i for i in found if i.status in statuses]

    async def arrivals(self, expectation: str, keys: Sequence[str], since: float) -> list[Arrival]:
        """Arrivals for ``expectation`` and any of ``keys`` at or after ``since``, by ``seq``."""
        unique = list(dict.fromkeys(keys))
        found: list[Arrival] = []
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            sql = self.queries.arrivals_of_keys_sql(len(chunk))
            found += [Arrival(*r) for r in await self._select(sql, (expectation, since, *chunk))]
        found.sort(key=lambda a: (a.seq, a.role))
        return found

    async def due_expectations(
        self, expectations: Sequence[str], now: float, limit: int
    ) -> list[ExpectationInstance]:
        """Open instances past their deadline, earliest first."""
        if not expectations:
            return []
        sql = self.queries.due_expectations_sql(len(expectations))
        rows = await self._select(sql, (*expectations, now, limit))
        return [expectation_from_row(r) for r in rows]

    async def claim_due_expectations(
        self, expectations: Sequence[str], now: float, limit: int, hold_until: float
    ) -> list[ExpectationInstance]:
        """Open instances past their deadline that no worker holds, held now."""
        if not expectations:
            return []
        sql = self.queries.claim_due_expectations_sql(len(expectations))
        params = (hold_until, *expectations, now, now, limit)
        rows = await self._transact(lambda c: c.execute(sql, params).fetchall())
        found = [expectation_from_row(r) for r in rows]
        found.sort(key=lambda i: (i.deadline, i.instance))  # RETURNING keeps no order
        return found

    async def next_expectation_due(self, expectations: Sequence[str]) -> float | None:
        """The earliest deadline of an open instance, or None."""
        if not expectations:
            return None
        rows = await self._select(
            self.queries.next_expectation_due_sql(len(expectations)), tuple(expectations)
        )
        return rows[0][0] if rows else None

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
        mark = self.queries.param
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("expectation", expectation),
            ("status", status),
            ("key", key),
            ("correlation_id", correlation_id),
        ):
            if value is not None:
                where.append(f"{column} = {mark}")
                params.append(value)
        rows = await self._select(self.queries.list_expectations_sql(where), (*params, limit))
        return [expectation_from_row(r) for r in rows]
