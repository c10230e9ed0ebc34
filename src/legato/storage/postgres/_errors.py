"""PostgreSQL's errors in words a user can act on: which server, what went wrong."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg

from legato.errors import StorageError


def is_duplicate(exc: BaseException) -> bool:
    """True for a unique-key violation."""
    return isinstance(exc, pg.UniqueViolation)


def is_connection_lost(exc: BaseException) -> bool:
    """True if the server could not be reached or the connection broke."""
    return isinstance(exc, psycopg.OperationalError) and not isinstance(
        exc, pg.QueryCanceled | pg.LockNotAvailable | pg.DeadlockDetected
    )


def postgres_error(exc: BaseException, where: str, doing: str) -> StorageError:
    """A ``StorageError`` for ``exc``, met while ``doing`` on the server ``where``."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, pg.InvalidPassword) or "password authentication failed" in detail:
        message = (
            f"PostgreSQL at {where} refused the password ({detail}): check the user and "
            "password in the database URL (or PGPASSWORD, ~/.pgpass)"
        )
    elif isinstance(exc, pg.InvalidCatalogName):
        message = f"PostgreSQL at {where}: {detail}. Create it (createdb), or fix the URL"
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
