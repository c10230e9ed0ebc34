"""SQLite's errors, named as what they are: a full disk is not a foreign file."""

from __future__ import annotations

import os
import pwd
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
        denied = _permission_denied(path)
        if denied is not None:
            refused, may_read = denied
            then = "commands that only read still work" if may_read else "nothing was changed"
            return StorageError(
                f"permission denied: {_this_user()} {refused}, so {doing} failed ({exc}). "
                f"Give this user access (chown or chmod), or run as one who has it; {then}"
            )
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


def _permission_denied(path: str) -> tuple[str, bool] | None:
    """What file permissions keep this process from doing to ``path``, and whether it may
    still read it; None when permissions are not the reason.

    SQLite says only "unable to open database file" or "readonly database", the same words
    for a read-only mount as for a file that belongs to someone else.
    """
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return None  # a read-only filesystem: no permission would let anyone write
    except OSError:
        pass  # a directory we may not enter: found below
    parts = directory.split(os.sep)
    for depth in range(2, len(parts) + 1):
        step = os.sep.join(parts[:depth])
        if not _may(step, os.X_OK):
            return f"may not enter the directory {step}, which holds {path}", False
    exists = os.path.exists(path)
    if exists and not _may(path, os.R_OK):
        return f"may not read {'or write ' if not _may(path, os.W_OK) else ''}{path}", False
    if exists and not _may(path, os.W_OK):
        return f"may read {path} but not write it", True
    if not _may(directory, os.W_OK):
        name = os.path.basename(path)
        if not exists:
            return f"may not create {name} in the directory {directory}", False
        # Writers need the -wal and -shm files beside the database, made at open.
        return (
            f"may not create files in the directory {directory}, where SQLite keeps "
            f"{name}-wal and {name}-shm",
            True,
        )
    return None


def _may(path: str, mode: int) -> bool:
    # Effective ids, as open() checks them (a setuid program's real user is someone else).
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)


def _this_user() -> str:
    uid = os.geteuid()
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:  # a uid with no passwd entry (common in containers)
        return f"uid {uid}"


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
