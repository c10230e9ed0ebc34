"""PostgreSQL's errors in words a user can act on: which server, what went wrong."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg

from legato.errors import DefinitionError, StorageError


def is_duplicate(exc: BaseException) -> bool:
    """True for a unique-key violation."""
    return isinstance(exc, pg.UniqueViolation)


def is_connection_lost(exc: BaseException) -> bool:
    """True if the server could not be reached or the connection broke."""
    return isinstance(exc, psycopg.OperationalError) and not isinstance(
        exc, pg.QueryCanceled | pg.LockNotAvailable | pg.DeadlockDetected
    )


def postgres_error(exc: BaseException, where: str, doing: str) -> StorageError | DefinitionError:
    """A ``StorageError`` for ``exc``, met while ``doing`` on the server ``where``; a
    ``DefinitionError`` when the caller's value is one PostgreSQL cannot hold."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, psycopg.DataError) and "NUL (0x00)" in detail:
        refused = DefinitionError(
            "a text value holds a NUL character (0x00), which PostgreSQL does not store "
            "(nothing was written)"
        )
        refused.__cause__ = exc
        return refused
    if isinstance(exc, pg.InvalidPassword) or "password authentication failed" in detail:
        message = (
            f"PostgreSQL at {where} refused the password ({detail}): check the user and "
            "password in the database URL (or PGPASSWORD, ~/.pgpass)"
        )
    elif isinstance(exc, pg.InvalidCatalogName) or _says(detail, "database", "does not exist"):
        message = (
            f"PostgreSQL at {where}: {_fatal(detail)}. Create it (createdb NAME), or fix "
            "the database URL"
        )
    elif _says(detail, "role", "does not exist"):
        message = f"PostgreSQL at {where}: {_fatal(detail)}. Fix the user in the database URL"
    elif is_connection_lost(exc):
        message = (
            f"cannot reach PostgreSQL at {where} ({doing}): {detail}. Is the server "
            "running, and are host and port right?"
        )
    else:
        message = f"PostgreSQL at {where} failed {doing}: {detail}"
    error = StorageError(message)
    error.__cause__ = exc
    return error


def _says(detail: str, first: str, then: str) -> bool:
    """True if the server's message names ``first`` and then ``then`` (at connect time
    psycopg gives an OperationalError whose text is all there is)."""
    at = detail.find(f"FATAL: {first} ")
    return at >= 0 and then in detail[at:]


def _fatal(detail: str) -> str:
    """The server's own sentence out of libpq's connection message."""
    at = detail.find("FATAL: ")
    return detail[at + len("FATAL: ") :] if at >= 0 else detail
