"""API tokens on every SQL adapter (mixed into ``SqlStore``): insert unless the name is
taken, revoke while active, and the two reads the server needs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from legato.model.tokens import ApiToken, Scope
from legato.storage.base import to_datetime


def token_from_row(row: Sequence[Any]) -> ApiToken:
    created = to_datetime(row[2])
    assert created is not None
    return ApiToken(row[0], Scope(row[1]), created, to_datetime(row[3]))


class SqlTokens:
    """The token methods of ``Store`` on SQL."""

    queries: Any

    async def _transact(self, body: Callable[[Any], Any]) -> Any:
        raise NotImplementedError

    async def _select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def create_token(self, name: str, digest: str, scope: str, at: float) -> bool:
        """Store a token; False (nothing written) if one of that name exists, revoked or not."""
        params = (name, digest, scope, at)
        inserted: int = await self._transact(
            lambda c: c.execute(self.queries.insert_token, params).rowcount
        )
        return inserted == 1

    async def revoke_token(self, name: str, at: float) -> bool:
        """Revoke the active token ``name``; False if there is none."""
        changed: int = await self._transact(
            lambda c: c.execute(self.queries.revoke_token, (at, name)).rowcount
        )
        return changed == 1

    async def list_tokens(self) -> list[ApiToken]:
        """Every token, revoked ones too, by name."""
        return [token_from_row(r) for r in await self._select(self.queries.list_tokens)]

    async def find_token(self, digest: str) -> ApiToken | None:
        """The token whose secret has this digest (revoked or not), or None."""
        rows = await self._select(self.queries.find_token, (digest,))
        return token_from_row(rows[0]) if rows else None
