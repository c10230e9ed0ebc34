"""The expectations half of ``AsyncClient`` and ``Client``: read expectation instances
from any process on the database (``legato expectations list|show`` use these)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from legato.model.expectations import ExpectationInstance, ExpectationStatus
from legato.storage.base import Store

T = TypeVar("T")


class AsyncExpectationsClient:
    """The expectation reads of ``AsyncClient``."""

    async def _open(self) -> Store:
        raise NotImplementedError

    async def list_expectations(
        self,
        *,
        name: str | None = None,
        status: str | ExpectationStatus | None = None,
        key: str | None = None,
        correlation_id: str | None = None,
        limit: int = 100,
    ) -> list[ExpectationInstance]:
        """Expectation instances, newest first: of one expectation (``name``), one status
        (``open``, ``fulfilled``, ``violated``, ``cancelled``, ``late_fulfilled``), one
        key and one flow (``correlation_id``, the trigger's) if given."""
        chosen = None if status is None else ExpectationStatus(status).value
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        return await (await self._open()).list_expectations(
            expectation=name, status=chosen, key=key, correlation_id=correlation_id, limit=limit
        )


class ExpectationsClient:
    """The blocking twins of ``AsyncExpectationsClient``'s methods, for ``Client``."""

    _async: AsyncExpectationsClient

    def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        raise NotImplementedError

    def list_expectations(
        self,
        *,
        name: str | None = None,
        status: str | ExpectationStatus | None = None,
        key: str | None = None,
        correlation_id: str | None = None,
        limit: int = 100,
    ) -> list[ExpectationInstance]:
        """Expectation instances, newest first (see ``AsyncClient.list_expectations``)."""
        return self._call(
            self._async.list_expectations,
            name=name,
            status=status,
            key=key,
            correlation_id=correlation_id,
            limit=limit,
        )
