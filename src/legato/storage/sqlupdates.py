"""``UpdateRun`` as SQL: one statement per shape (which changes and conditions an op gives).

Ops of one shape share one statement, so a thousand runs parking in one batch go to the
database as one ``executemany``. Standard SQL, shared by every SQL adapter.
"""

from __future__ import annotations

from typing import Any

from legato.storage.base import KEEP, UpdateRun


def update_run_shape(op: UpdateRun) -> tuple[Any, ...]:
    """Which changes and conditions ``op`` gives: ops of one shape share one statement."""
    return (
        op.status is not None,
        op.wake_at is not KEEP,
        op.cancel_requested is not None,
        op.clear_error,
        op.updated_at is not None,
        -1 if op.if_status is None else len(op.if_status),
        op.if_owner is not None,
        op.if_unowned,
        op.if_cancel_requested is not None,
        op.if_signal_after is not None,
        op.if_wake_after is not None,
        op.required,
    )


def update_run_sql(shape: tuple[Any, ...], p: str) -> str:
    """The UPDATE (standard SQL) for ``UpdateRun`` ops of ``shape``; ``p`` marks a parameter.

    Only the changes and conditions of the shape appear; ``update_run_params`` gives the
    parameters in the same order.
    """
    status, wake, cancel, clear, updated, statuses, owner, unowned, flag, signal, later, _ = shape
    sets = [
        f"{column} = {p}"
        for column, present in (
            ("status", status),
            ("wake_at", wake),
            ("cancel_requested", cancel),
            ("cancel_by", cancel),
            ("updated_at", updated),
        )
        if present
    ]
    if clear:
        sets.append("error = NULL, error_pos = NULL")
    where = [f"run_id = {p}"]
    if statuses > 0:
        where.append(f"status IN ({', '.join([p] * statuses)})")
    elif statuses == 0:
        where.append("1 = 0")  # no status matches an empty list (and IN () is not SQL)
    if owner:
        where.append(f"owner = {p}")
    if unowned:
        where.append("owner IS NULL")
    if flag:
        where.append(f"cancel_requested = {p}")
    if signal:
        where.append(
            "EXISTS (SELECT 1 FROM signals WHERE signals.run_id = runs.run_id "
            f"AND signals.id > {p})"
        )
    if later:
        where.append(f"(wake_at IS NULL OR wake_at > {p})")
    changes = ", ".join(sets) or "run_id = run_id"  # a pure guard still counts its row
    return f"UPDATE runs SET {changes} WHERE {' AND '.join(where)}"


def update_run_params(op: UpdateRun) -> list[Any]:
    """The parameters of ``op``'s statement (see ``update_run_sql``)."""
    params: list[Any] = []
    if op.status is not None:
        params.append(op.status)
    if op.wake_at is not KEEP:
        params.append(op.wake_at)
    if op.cancel_requested is not None:
        params.append(int(op.cancel_requested))
        params.append(op.cancel_by)
    if op.updated_at is not None:
        params.append(op.updated_at)
    params.append(op.run_id)
    if op.if_status is not None:
        params.extend(op.if_status)
    if op.if_owner is not None:
        params.append(op.if_owner)
    if op.if_cancel_requested is not None:
        params.append(int(op.if_cancel_requested))
    if op.if_signal_after is not None:
        params.append(op.if_signal_after)
    if op.if_wake_after is not None:
        params.append(op.if_wake_after)
    return params
