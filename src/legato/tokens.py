"""API tokens on the clients: ``create_token``, ``list_tokens``, ``revoke_token`` and
``authenticate``, the calls behind ``legato tokens`` and the HTTP API's bearer auth.

A secret is ``lgt_`` and 43 random URL-safe characters (256 bits), shown once; the
database keeps its SHA-256 digest. A plain hash is enough for a random secret of that
size (nothing to guess from a dictionary), and lets a request be checked with one
indexed read.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from legato.errors import DefinitionError, TokenExists, TokenNotFound
from legato.model.tokens import ApiToken, Scope
from legato.storage.base import Store

T = TypeVar("T")

SECRET_PREFIX = "lgt_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def digest(secret: str) -> str:
    """The hex SHA-256 of ``secret``: what the database keeps."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_token_name(name: object) -> str:
    """``name``, if it is 1-64 letters, digits and ``. _ @ -`` (starting with a letter or
    digit); else ``DefinitionError``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DefinitionError(
            f"token name {name!r} must be 1-64 letters, digits and . _ @ - "
            "(starting with a letter or digit)"
        )
    return name


def check_scope(scope: object) -> Scope:
    """``scope`` as a ``Scope``; else ``DefinitionError`` naming the scopes."""
    names = [s.value for s in Scope]
    if isinstance(scope, str) and scope in names:
        return Scope(scope)
    if not isinstance(scope, Scope):
        raise DefinitionError(f"unknown scope {scope!r}: one of {', '.join(names)}")
    return scope


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just created, with its secret: shown now, never again."""

    token: ApiToken
    secret: str


class AsyncTokenClient:
    """The token methods of ``AsyncClient``."""

    _time: Callable[[], float]

    async def _open(self) -> Store:
        raise NotImplementedError

    async def create_token(self, name: str, scope: str = "read") -> NewToken:
        """Create a token named ``name`` (who did it, in the records of what it does) with
        ``scope`` (``read``, ``operate`` or ``admin``). Raises ``TokenExists`` if the name
        was ever used."""
        check_token_name(name)
        allowed = check_scope(scope)
        store = await self._open()
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        at = self._time()
        if not await store.create_token(name, digest(secret), allowed.value, at):
            raise TokenExists(name)
        return NewToken(ApiToken(name, allowed, datetime.fromtimestamp(at, UTC)), secret)

    async def list_tokens(self) -> list[ApiToken]:
        """Every token, revoked ones too, by name (never their secrets)."""
        return await (await self._open()).list_tokens()

    async def revoke_token(self, name: str) -> ApiToken:
        """Revoke the active token ``name``: requests carrying it are refused from now on.
        Raises ``TokenNotFound`` if there is no such active token."""
        store = await self._open()
        if not await store.revoke_token(name, self._time()):
            raise TokenNotFound(name)
        return next(t for t in await store.list_tokens() if t.name == name)

    async def authenticate(self, secret: str) -> ApiToken | None:
        """The active token whose secret is ``secret``, or None (unknown or revoked)."""
        if not secret.startswith(SECRET_PREFIX):
            return None
        token = await (await self._open()).find_token(digest(secret))
        return token if token is not None and token.active else None


class TokenClient:
    """The blocking twins of ``AsyncTokenClient``'s methods, for ``Client``."""

    _async: AsyncTokenClient

    def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        raise NotImplementedError

    def create_token(self, name: str, scope: str = "read") -> NewToken:
        """Create a token (see ``AsyncClient.create_token``)."""
        return self._call(self._async.create_token, name, scope)

    def list_tokens(self) -> list[ApiToken]:
        """Every token, by name."""
        return self._call(self._async.list_tokens)

    def revoke_token(self, name: str) -> ApiToken:
        """Revoke the active token ``name``."""
        return self._call(self._async.revoke_token, name)

    def authenticate(self, secret: str) -> ApiToken | None:
        """The active token whose secret is ``secret``, or None."""
        return self._call(self._async.authenticate, secret)
