"""``legato runs retry | resume-compensation | restart | bulk``: the operator actions
(docs/operations.md), each recorded in the run's history as done by ``--by`` (default
``cli:USER``)."""

from __future__ import annotations

import shlex
import sys
from dataclasses import asdict
from typing import Annotated, Any

import typer

from legato.cli.errors import USAGE, fail
from legato.cli.options import (
    ByOption,
    CorrelationOption,
    DatabaseOption,
    JsonOption,
    PrefixOption,
    SinceOption,
    UntilOption,
    WorkflowOption,
    connect,
    who,
)
from legato.cli.render import console, print_json
from legato.model.times import as_utc
from legato.operations import BULK_ACTIONS, BulkPreview

RunId = Annotated[str, typer.Argument(metavar="RUN_ID", help="The run's id.")]


def retry(
    run_id: RunId, by: ByOption = None, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Retry a failed run from its failed step (deploy the fix first): its completed
    steps are kept, the step that gave up runs again."""
    with connect(database) as client:
        status = client.retry(run_id, by=who(by))
    _said(run_id, status.value, as_json, "retried from its failed step")


def resume_compensation(
    run_id: RunId, by: ByOption = None, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Compensate a run in compensation_failed again (deploy the fix first)."""
    with connect(database) as client:
        status = client.resume_compensation(run_id, by=who(by))
    _said(run_id, status.value, as_json, "compensating again")


def restart(
    run_id: RunId,
    new_run_id: Annotated[
        str | None, typer.Option("--run-id", help="The new run's id (default: a new one).")
    ] = None,
    by: ByOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start an ended run again as a new run: same workflow, same input, same flow."""
    with connect(database) as client:
        fresh = client.restart(run_id, new_run_id=new_run_id, by=who(by))
    if as_json:
        print_json({"run_id": run_id, "new_run_id": fresh})
    else:
        console().print(
            f"run {run_id} restarted as run {fresh}. Follow it with "
            f"`legato runs show {shlex.quote(fresh)}`."
        )


def _said(run_id: str, status: str, as_json: bool, what: str) -> None:
    if as_json:
        print_json({"run_id": run_id, "status": status})
    else:
        console().print(
            f"run {run_id} {what} (now {status}). Follow it with "
            f"`legato runs show {shlex.quote(run_id)}`."
        )


def bulk(
    action: Annotated[
        str,
        typer.Argument(
            metavar="ACTION",
            help=f"One of: {', '.join(a.replace('_', '-') for a in BULK_ACTIONS)}.",
        ),
    ],
    status: Annotated[
        str | None, typer.Option("--status", "-s", help="Only runs in this status.")
    ] = None,
    workflow: WorkflowOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    correlation_id: CorrelationOption = None,
    prefix: PrefixOption = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Act without asking (after the preview).")
    ] = False,
    by: ByOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Apply an operator action to every run a filter selects (among those it applies
    to: a retry takes failed runs): shows how many first, then asks, unless --yes."""
    name = action.replace("-", "_")
    if name not in BULK_ACTIONS:
        raise fail(
            f"unknown action {action!r}",
            hint=f"one of {', '.join(a.replace('_', '-') for a in BULK_ACTIONS)}",
            exit_code=USAGE,
        )
    filters: dict[str, Any] = {
        "status": status,
        "workflow": workflow,
        "since": as_utc(since),
        "until": as_utc(until),
        "correlation_id": correlation_id,
        "run_id_prefix": prefix,
    }
    with connect(database) as client:
        preview = client.preview_bulk(name, **filters)
        if not as_json:
            _show(preview)
        if preview.count == 0:
            if as_json:
                print_json({"preview": asdict(preview), "done": None})
            return
        if not yes:
            if as_json or not sys.stdin.isatty():
                if as_json:
                    print_json({"preview": asdict(preview), "done": None})
                raise fail(
                    f"nothing done: {preview.count} run(s) would be affected",
                    hint="run it again with --yes to go ahead",
                )
            typer.confirm(f"{action} these {preview.count} run(s)?", abort=True)
        done = client.apply_bulk(name, preview.confirm, **filters, by=who(by))
    if as_json:
        print_json({"preview": asdict(preview), "done": asdict(done)})
        return
    out = console()
    out.print(f"{len(done.done)} run(s): {action} done")
    for run_id, why in done.skipped.items():
        out.print(f"  skipped {run_id}: {why}")
    for old, new in done.restarted.items():
        out.print(f"  {old} -> {new}")


def _show(preview: BulkPreview) -> None:
    out = console()
    verb = preview.action.replace("_", " ")
    if preview.count == 0:
        out.print(f"no run matches: nothing to {verb}")
        return
    out.print(f"{preview.count} run(s) would be affected by {verb}:")
    for run_id in preview.run_ids:
        out.print(f"  {run_id}")
    if preview.count > len(preview.run_ids):
        out.print(f"  ... and {preview.count - len(preview.run_ids)} more")
