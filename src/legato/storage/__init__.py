"""Storage: the ``Store`` port and its adapters, chosen by database URL."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

from legato.errors import ConfigurationError
from legato.storage.base import Store

DEFAULT_DATABASE_URL = "sqlite:///./legato.db"
DATABASE_ENV = "LEGATO_DATABASE_URL"


def database_url(url: str | None = None) -> str:
    """The URL to use: ``url``, else ``$LEGATO_DATABASE_URL``, else ``./legato.db``."""
    return url or os.environ.get(DATABASE_ENV) or DEFAULT_DATABASE_URL


def open_store(url: str | None = None) -> Store:
    """Build the store for a database URL (``sqlite:///path.db`` or ``memory://``).

    ``sqlite:///relative.db`` and ``sqlite:////absolute/path.db`` both work; add
    ``?synchronous=normal`` to trade power-loss durability for speed.
    """
    url = database_url(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        from legato.storage.memory import MemoryStore

        return MemoryStore()
    if scheme == "sqlite":
        from legato.storage.sqlite import SqliteStore

        path = parts.path
        if parts.netloc:
            raise ConfigurationError(
                f"database URL {url!r}: write sqlite:///relative.db or "
                "sqlite:////absolute/path.db (three or four slashes)"
            )
        if path.startswith("/"):
            path = path[1:]
        if not path:
            raise ConfigurationError(f"database URL {url!r} names no file")
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(options) - {"synchronous"}
        if unknown:
            raise ConfigurationError(f"database URL {url!r}: unknown option(s) {sorted(unknown)}")
        try:
            return SqliteStore(path, synchronous=options.get("synchronous", "full"))
        except ValueError as exc:
            raise ConfigurationError(f"database URL {url!r}: {exc}") from None
    raise ConfigurationError(
        f"database URL {url!r} has an unknown scheme {parts.scheme!r}; use sqlite:///path.db "
        "or memory://"
    )
