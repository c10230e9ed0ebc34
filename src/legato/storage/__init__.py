"""Storage: the ``Store`` port and its adapters, chosen by database URL."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from legato.errors import ConfigurationError
from legato.storage.base import Store

DEFAULT_DATABASE_URL = "sqlite:///./legato.db"
DATABASE_ENV = "LEGATO_DATABASE_URL"
URL_FORMS = "sqlite:///relative.db, sqlite:////absolute/path.db or memory://"
"""The database URLs Legato accepts, as error messages list them."""

_SQLITE_PREFIX = "sqlite:///"
_SQLITE_OPTIONS = frozenset({"synchronous"})


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A database URL taken apart: ``memory://``, or a SQLite file and its options.

    ``path`` is the SQLite file as written in the URL (relative to the current directory
    unless it starts with ``/``); None for ``memory://``.
    """

    url: str
    scheme: str
    path: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def parse_database_url(url: str, *, source: str | None = None) -> DatabaseUrl:
    """Check ``url`` and take it apart; ``ConfigurationError`` lists the accepted forms.

    ``source`` names where the URL came from when the caller did not write it (the
    environment variable), so the message points at what to fix.
    """
    what = f"{source}={url!r}" if source else f"database URL {url!r}"
    scheme = urlsplit(url).scheme.lower()
    if not scheme:
        raise ConfigurationError(f"{what} has no scheme; write {URL_FORMS}")
    if scheme == "memory":
        if url.lower() != "memory://":
            raise ConfigurationError(f"{what} is malformed; write {URL_FORMS}")
        return DatabaseUrl(url, "memory")
    if scheme != "sqlite":
        raise ConfigurationError(f"{what} has an unknown scheme {scheme!r}; write {URL_FORMS}")
    # urlsplit reads sqlite:/x.db and sqlite:///x.db alike; only the slashes tell a
    # relative path from a host name or a typo, so they are checked on the text.
    if not url.lower().startswith(_SQLITE_PREFIX):
        raise ConfigurationError(
            f"{what} is malformed: a SQLite URL starts with three slashes (four before an "
            f"absolute path); write {URL_FORMS}"
        )
    parts = urlsplit(url)
    path = parts.path[1:]  # the third slash ends the (empty) host
    if not path:
        raise ConfigurationError(f"{what} names no file; write {URL_FORMS}")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(options) - _SQLITE_OPTIONS
    if unknown:
        raise ConfigurationError(
            f"{what}: unknown option(s) {sorted(unknown)}; the only one is ?synchronous=..."
        )
    return DatabaseUrl(url, "sqlite", path, options)


def database_url(url: str | None = None) -> str:
    """The URL to use, checked: ``url``, else ``$LEGATO_DATABASE_URL``, else ``./legato.db``.

    A bad URL from the environment raises ``ConfigurationError`` naming the variable.
    """
    if url:
        parse_database_url(url)
        return url
    from_env = os.environ.get(DATABASE_ENV)
    if from_env:
        parse_database_url(from_env, source=DATABASE_ENV)
        return from_env
    return DEFAULT_DATABASE_URL


def open_store(url: str | None = None) -> Store:
    """Build the store for a database URL (``sqlite:///path.db`` or ``memory://``).

    ``sqlite:///relative.db`` and ``sqlite:////absolute/path.db`` both work; add
    ``?synchronous=normal`` to trade power-loss durability for speed.
    """
    parsed = parse_database_url(database_url(url))
    if parsed.path is None:
        from legato.storage.memory import MemoryStore

        return MemoryStore()
    from legato.storage.sqlite import SqliteStore

    try:
        return SqliteStore(parsed.path, synchronous=parsed.options.get("synchronous", "full"))
    except ValueError as exc:
        raise ConfigurationError(f"database URL {parsed.url!r}: {exc}") from None
