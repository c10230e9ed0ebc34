"""SQLite's errors, named as what they are: a full disk is not a foreign file."""

from __future__ import annotations

import os
import sqlite3

from legato.errors import NotALegatoDatabase, StorageError

_READ_ONLY = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")


def is_read_only(exc: BaseException) -> bool:
    """True if ``exc`` says the file (or its directory, or its filesystem) cannot be written."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(_READ_ONLY)


def sqlite_error(exc: sqlite3.Error, path: str, doing: str) -> StorageError:
    """The ``StorageError`` that says what ``exc`` means for ``path``; never a hint to drop
    a good file."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_FULL") or (name.startswith("SQLITE_IOERR") and _disk_full(path)):
        return StorageError(
            f"the disk holding {path} is full: {doing} failed ({exc}). Free some space; "
            "nothing of this write was kept, and a worker retries until it succeeds"
        )
    if is_read_only(exc):
        return StorageError(
            f"cannot write {path}: {doing} failed ({exc}). The file, its directory or its "
            "filesystem is read-only or not writable by this user; commands that only read "
            "still work"
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return NotALegatoDatabase(
            f"{path} is corrupt or not a SQLite database ({exc}). If it held your runs, "
            "restore it from a backup; Legato has not changed it"
        )
    return StorageError(f"SQLite error on {path} while {doing}: {exc}")


def _disk_full(path: str) -> bool:
    """Whether the filesystem holding ``path`` has (next to) no room left.

    SQLite reports a full disk as an I/O error when it is the WAL or its index that
    cannot grow or be made.
    """
    try:
        stats = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 64 * 1024
