"""Identifier types, the rule for run ids, and the ids Legato makes."""

import os
import time
import uuid
from typing import NewType

# errors.py imports nothing of ours: the one module model/ may lean on.
from legato.errors import DefinitionError

RunId = NewType("RunId", str)
"""A run's id: chosen by the caller (``purchase-p-1``) or generated (a UUID)."""

WorkerId = NewType("WorkerId", str)
"""A worker process's id, unique per process start."""

MAX_RUN_ID_LENGTH = 255
"""Run ids are keys in every table and every URL: long enough for any business key."""


def check_run_id(run_id: object) -> RunId:
    """Return ``run_id`` if it is a usable run id, else raise ``DefinitionError``.

    The one rule for every way in (``App.start``, the clients, the CLI): a non-empty
    string of at most 255 characters. An empty id is refused, not replaced by a random
    one, since a caller who passes an id means to find the run by it later.
    """
    if not isinstance(run_id, str) or not run_id or len(run_id) > MAX_RUN_ID_LENGTH:
        shown = run_id if not isinstance(run_id, str) else run_id[:40]
        raise DefinitionError(
            f"run_id must be a non-empty string of at most {MAX_RUN_ID_LENGTH} characters, "
            f"got {shown!r}" + ("..." if isinstance(run_id, str) and len(run_id) > 40 else "")
        )
    if "\x00" in run_id:
        raise DefinitionError(f"run_id {run_id!r} holds a NUL character, which no database takes")
    return RunId(run_id)


def continued_run_id(run_id: str) -> RunId:
    """The id of the run that continues ``run_id`` (``legato.continue_as_new``).

    ``order-7`` continues as ``order-7~1``, which continues as ``order-7~2``: the chain
    stays findable by its first id, and the same run always continues under the same id,
    so a replay or a crash cannot fork the chain.
    """
    base, sep, number = run_id.rpartition("~")
    if sep and number.isdigit() and base:
        return RunId(f"{base}~{int(number) + 1}")
    return RunId(f"{run_id}~1")


def new_run_id() -> str:
    """A fresh run id: a UUID whose first 48 bits are the time in ms (like UUIDv7).

    Ids made close in time sort close together, so new runs and their history land on a
    few B-tree pages instead of dirtying pages all over the database at each commit.
    """
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))
