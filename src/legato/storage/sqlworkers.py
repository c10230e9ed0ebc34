"""Workers on every SQL adapter (mixed into ``SqlStore``): claiming runs, worker rows and
their heartbeats, releasing what dead workers held, and what workers serve."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from legato.model import Run
from legato.model.payloads import dumps
from legato.model.workers import WorkerInfo
from legato.storage.sqlrows import run_from_row, worker_from_row

T = TypeVar("T")


class SqlWorkers:
    """The claim and worker methods of ``Store`` on SQL."""

    queries: Any

    async def _transact(self, body: Callable[[Any], T]) -> T:
        raise NotImplementedError

    async def _select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def claim_runs(
        self, worker_id: str, now: float, limit: int, workflows: Sequence[str]
    ) -> list[Run]:
        """Take up to ``limit`` unfinished, unowned, due runs of ``workflows``, earliest due
        first (nothing for a worker without a row)."""
        if not workflows:
            return []
        sql = self.queries.claim_runs_sql(len(workflows))
        params = (worker_id, now, *workflows, limit, worker_id)
        rows = await self._transact(lambda c: c.execute(sql, params).fetchall())
        return [run_from_row(r) for r in rows]

    async def release_runs(self, worker_id: str, run_ids: Sequence[str] | None = None) -> int:
        """Drop ownership of the runs ``worker_id`` owns (all, or just ``run_ids``)."""
        q = self.queries
        if run_ids is None:
            return await self._transact(lambda c: c.execute(q.release_all, (worker_id,)).rowcount)
        rows = [(worker_id, rid) for rid in run_ids]
        return await self._transact(lambda c: c.executemany(q.release_one, rows).rowcount)

    async def register_worker(
        self,
        worker_id: str,
        host: str,
        pid: int,
        at: float,
        workflows: Sequence[str] = (),
        lease_s: float | None = None,
    ) -> None:
        """Record a worker process and what it serves (or refresh its heartbeat)."""
        params = (worker_id, host, pid, at, at, dumps(list(workflows)), lease_s)
        await self._transact(lambda c: c.execute(self.queries.register_worker, params))

    async def heartbeat(self, worker_id: str, at: float) -> bool:
        """Say that ``worker_id`` is alive; False if it has no row."""
        changed: int = await self._transact(
            lambda c: c.execute(self.queries.heartbeat, (at, worker_id)).rowcount
        )
        return changed > 0

    async def remove_workers(self, worker_ids: Sequence[str]) -> int:
        """Forget these workers and release their runs (and deliveries); count the runs."""
        q = self.queries

        def body(c: Any) -> int:
            released = 0
            for wid in worker_ids:
                c.execute(q.delete_worker, (wid,))
                released += c.execute(q.release_all, (wid,)).rowcount
                c.execute(q.release_deliveries, (wid,))
            return released

        return await self._transact(body)

    async def release_orphaned_runs(self) -> int:
        """Release unfinished runs (and deliveries) whose owner has no worker row; count
        the runs."""
        q = self.queries

        def body(c: Any) -> int:
            c.execute(q.release_orphaned_deliveries)
            released: int = c.execute(q.release_orphaned).rowcount
            return released

        return await self._transact(body)

    async def register_workflows(self, names: Sequence[str], at: float) -> None:
        """Record workflow names."""
        rows = [(n, at) for n in names]
        await self._transact(lambda c: c.executemany(self.queries.register_workflow, rows))

    async def next_due(self, workflows: Sequence[str]) -> float | None:
        """The earliest ``wake_at`` of unowned, unfinished runs of ``workflows``."""
        if not workflows:
            return None
        rows = await self._select(self.queries.next_due_sql(len(workflows)), list(workflows))
        return rows[0][0] if rows else None

    async def cancel_requests(self, worker_id: str) -> list[str]:
        """Unfinished runs owned by ``worker_id`` whose cancellation was requested."""
        return [r[0] for r in await self._select(self.queries.cancel_requests, (worker_id,))]

    async def list_workers(self) -> list[WorkerInfo]:
        """Every registered worker."""
        rows = await self._select(self.queries.list_workers)
        return [worker_from_row(r) for r in rows]

    async def list_workflows(self) -> list[str]:
        """Registered workflow names."""
        return [r[0] for r in await self._select(self.queries.list_workflows)]
