"""Fencing: a worker's records land only on runs it still holds (``Append.owner``)."""

from __future__ import annotations

from collections.abc import Sequence

from legato.errors import ConcurrencyConflict
from legato.storage.base import Append, NewRun, Write


def fenced_appends(ops: Sequence[Write]) -> dict[str, list[str]]:
    """The runs whose ``Append`` ops are fenced, by the owner they name (runs a
    ``NewRun`` of the same batch creates left out), for a store to check first."""
    created = {op.run_id for op in ops if type(op) is NewRun}
    by_owner: dict[str, dict[str, None]] = {}
    for op in ops:
        if type(op) is Append and op.owner is not None and op.run_id not in created:
            by_owner.setdefault(op.owner, {})[op.run_id] = None
    return {owner: list(runs) for owner, runs in by_owner.items()}


def fence_conflict(owner: str, lost: Sequence[str]) -> ConcurrencyConflict:
    """The error for records of runs ``owner`` no longer holds."""
    return ConcurrencyConflict(
        f"{len(lost)} run(s) written by {owner!r} are no longer its own (e.g. {lost[0]!r}): "
        "another worker took them over; nothing of the batch was written"
    )
