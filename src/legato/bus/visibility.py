"""The visibility half of ``AsyncClient`` and ``Client``: expectation instances and
alerts, read from any process on the database (``legato expectations`` and ``legato
alerts`` use these)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from legato.model.alerts import Alert, AlertKind, AlertStatus
from legato.model.expectations import ExpectationInstance, ExpectationStatus
from legato.storage.base import Store

T = TypeVar("T")


def _check_limit(limit: object) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")


class AsyncVisibilityClient:
    """The expectation and alert reads of ``AsyncClient``."""

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
        _check_limit(limit)
        return await (await self._open()).list_expectations(
            expectation=name, status=chosen, key=key, correlation_id=correlation_id, limit=limit
        )

    async def list_alerts(
        self,
        *,
        status: str | AlertStatus | None = None,
        kind: str | AlertKind | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Alerts, latest raised first: of one status (``raised``, ``resolved``) and one
        kind (``stuck_run``, ``run_needs_operator``, ``expectation_violated``,
        ``dead_letter``, ``unrouted_event``, ``dead_worker``) if given."""
        chosen = None if status is None else AlertStatus(status).value
        which = None if kind is None else AlertKind(kind).value
        _check_limit(limit)
        return await (await self._open()).list_alerts(status=chosen, kind=which, limit=limit)


class VisibilityClient:
    """The blocking twins of ``AsyncVisibilityClient``'s methods, for ``Client``."""

    _async: AsyncVisibilityClient

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

    def list_alerts(
        self,
        *,
        status: str | AlertStatus | None = None,
        kind: str | AlertKind | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Alerts, latest raised first (see ``AsyncClient.list_alerts``)."""
        return self._call(self._async.list_alerts, status=status, kind=kind, limit=limit)
