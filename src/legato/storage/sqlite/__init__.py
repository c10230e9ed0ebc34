"""SQLite adapter: the embedded default (WAL, fsync on commit, one writer thread)."""

from legato.storage.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
