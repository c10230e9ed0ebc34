"""Run search on the clients: ``search_runs``, a page of described runs and the cursor
of the next page, for the HTTP API, the console and ``legato runs list``.

A cursor is the position of a page's last run (its creation time and id), opaque to the
caller: the next page starts after it, so runs created meanwhile never shift a page and
none is listed twice or left out.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson

from legato.errors import DefinitionError
from legato.model import RunStatus
from legato.model.description import RunDescription, describe_run
from legato.model.times import timestamp_of
from legato.storage.base import RunSearch, Store

T = TypeVar("T")

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of ``search_runs``: runs newest first, and where the next page starts
    (None when this one is the last)."""

    runs: list[RunDescription]
    next_cursor: str | None


def encode_cursor(created_at: float, run_id: str) -> str:
    """The cursor of the page after the run at ``(created_at, run_id)``."""
    return base64.urlsafe_b64encode(orjson.dumps([created_at, run_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """``encode_cursor``'s position; ``DefinitionError`` for anything it did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, run_id = orjson.loads(raw)
        if isinstance(at, int | float) and not isinstance(at, bool) and isinstance(run_id, str):
            return float(at), run_id
    except (ValueError, TypeError, orjson.JSONDecodeError):
        pass
    raise DefinitionError(f"cursor {cursor!r} is not one a run listing returned")


class AsyncRunSearchClient:
    """The run search of ``AsyncClient``."""

    async def _open(self) -> Store:
        raise NotImplementedError

    async def search_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        correlation_id: str | None = None,
        run_id_prefix: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs newest first, described (what step, what failed, what next; without
        input and output), filtered by status, workflow, creation time (``since``
        inclusive, ``until`` exclusive), correlation id and run id prefix; ``limit`` per
        page (1-1000), ``cursor`` from the previous page's ``next_cursor``."""
        if status is not None:
            RunStatus(status)  # a clear ValueError for a status that does not exist
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
            raise DefinitionError(f"limit must be an integer from 1 to {MAX_PAGE}, got {limit!r}")
        search = RunSearch(
            created_after=timestamp_of(since, "since"),
            created_before=timestamp_of(until, "until"),
            correlation_id=correlation_id,
            run_id_prefix=run_id_prefix,
            before=None if cursor is None else decode_cursor(cursor),
        )
        store = await self._open()
        # One more than asked: whether a next page exists, without a read to find out.
        runs = await store.list_runs(
            status=status, workflow=workflow, limit=limit + 1, payloads=False, search=search
        )
        more, runs = len(runs) > limit, runs[:limit]
        histories = await store.histories([r.run_id for r in runs]) if runs else {}
        workers = await store.list_workers()
        workflows = await store.list_workflows()
        described = [
            describe_run(run, histories.get(run.run_id, []), workers=workers, workflows=workflows)
            for run in runs
        ]
        last = runs[-1] if runs else None
        following = (
            encode_cursor(last.created_at.timestamp(), last.run_id) if more and last else None
        )
        return RunPage(described, following)


class RunSearchClient:
    """The blocking twin of ``AsyncRunSearchClient``, for ``Client``."""

    _async: AsyncRunSearchClient

    def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        raise NotImplementedError

    def search_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        correlation_id: str | None = None,
        run_id_prefix: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs newest first, described, a page at a time (see ``AsyncClient.search_runs``)."""
        return self._call(
            self._async.search_runs,
            status=status,
            workflow=workflow,
            since=since,
            until=until,
            correlation_id=correlation_id,
            run_id_prefix=run_id_prefix,
            limit=limit,
            cursor=cursor,
        )
