"""Storage: the ``Store`` port and its adapters, chosen by database URL."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from legato.errors import ConfigurationError
from legato.storage.base import Store

DEFAULT_DATABASE_URL = "sqlite:///./legato.db"
DATABASE_ENV = "LEGATO_DATABASE_URL"
URL_FORMS = (
    "sqlite:///relative.db, sqlite:////absolute/path.db, postgresql://user@host/db or memory://"
)
"""The database URLs Legato accepts, as error messages list them."""

_SQLITE_PREFIX = "sqlite:///"
_SQLITE_OPTIONS = frozenset({"synchronous"})
_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})
POSTGRES_OPTIONS = frozenset({"schema", "notify", "readers"})
"""Options of a PostgreSQL URL that are Legato's; libpq gets the others."""
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A database URL taken apart: ``memory://``, a SQLite file, or a PostgreSQL server.

    ``path`` is the SQLite file as written in the URL (relative to the current directory
    unless it starts with ``/``); None otherwise. For PostgreSQL, ``conninfo`` is the URL
    without Legato's own options (``schema``, ``notify``, ``readers``), for libpq.
    """

    url: str
    scheme: str
    path: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    conninfo: str | None = None

    @property
    def display(self) -> str:
        """The URL with any password replaced by ``***``, for messages and logs."""
        return hide_password(self.url)


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
    if scheme in _POSTGRES_SCHEMES:
        return _postgres_url(url, what)
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


def _postgres_url(url: str, what: str) -> DatabaseUrl:
    parts = urlsplit(url)
    if not url.lower().startswith(tuple(f"{s}://" for s in _POSTGRES_SCHEMES)):
        raise ConfigurationError(f"{what} is malformed; write {URL_FORMS}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in POSTGRES_OPTIONS}
    if ours.get("notify", "on") not in ("on", "off"):
        raise ConfigurationError(f"{what}: notify is on or off, not {ours['notify']!r}")
    if "readers" in ours and not (ours["readers"].isdigit() and 1 <= int(ours["readers"]) <= 64):
        raise ConfigurationError(f"{what}: readers is a number of connections, 1 to 64")
    schema = ours.get("schema", "legato")
    if not SCHEMA_NAME.match(schema):
        raise ConfigurationError(
            f"{what}: schema {schema!r} is not a plain lower-case SQL name (letters, digits, _)"
        )
    rest = urlencode([(k, v) for k, v in query if k not in POSTGRES_OPTIONS])
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, rest, ""))
    return DatabaseUrl(url, "postgresql", None, ours, conninfo)


def hide_password(url: str) -> str:
    """``url`` with the password of its user part, if any, as ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))


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


def open_store(url: str | None = None, *, migrate: bool = False) -> Store:
    """Build the store for a database URL (``sqlite:///path.db``, ``postgresql://...`` or
    ``memory://``).

    ``sqlite:///relative.db`` and ``sqlite:////absolute/path.db`` both work; add
    ``?synchronous=normal`` to trade power-loss durability for speed. A SQLite file is
    created and migrated when opened. A PostgreSQL database must be migrated first
    (``legato db migrate``) unless ``migrate=True``.
    """
    parsed = parse_database_url(database_url(url))
    if parsed.scheme == "postgresql":
        return _postgres_store(parsed, migrate=migrate)
    if parsed.path is None:
        from legato.storage.memory import MemoryStore

        return MemoryStore()
    from legato.storage.sqlite import SqliteStore

    try:
        return SqliteStore(parsed.path, synchronous=parsed.options.get("synchronous", "full"))
    except ValueError as exc:
        raise ConfigurationError(f"database URL {parsed.url!r}: {exc}") from None


def _postgres_store(parsed: DatabaseUrl, *, migrate: bool) -> Store:
    try:
        from legato.storage.postgres import PostgresStore
    except ImportError as exc:
        raise ConfigurationError(
            f"{parsed.display} is a PostgreSQL URL, but psycopg is not installed: "
            "pip install 'legato[postgres]'"
        ) from exc
    assert parsed.conninfo is not None
    return PostgresStore(
        parsed.conninfo,
        schema=parsed.options.get("schema", "legato"),
        url=parsed.display,
        readers=int(parsed.options.get("readers", "4")),
        notify=parsed.options.get("notify", "on") == "on",
        migrate=migrate,
    )
