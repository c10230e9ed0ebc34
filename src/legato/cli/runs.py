"""``legato runs ...``, ``legato start`` and ``legato cancel``: runs, through ``legato.Client``.

No engine runs in the CLI process: ``start`` writes a pending run that a ``legato worker``
on the same database picks up; the read commands describe what the workers recorded.
"""

from __future__ import annotations

import difflib
import shlex
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from legato.cli.errors import fail
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
    parse_json,
    who,
)
from legato.cli.render import (
    console,
    description_view,
    history_lines,
    print_json,
    print_json_line,
    print_table,
    run_summary,
    runs_table,
    step_line,
    waiting,
    when,
)
from legato.errors import RunFailed
from legato.model import RunStatus
from legato.model.description import RunDescription
from legato.model.times import as_utc
from legato.runsearch import MAX_PAGE
from legato.views import history_json

runs_app = typer.Typer(help="List and inspect runs.", no_args_is_help=True)


@runs_app.command("list")
def list_runs(
    status: Annotated[
        RunStatus | None, typer.Option("--status", "-s", help="Only runs in this status.")
    ] = None,
    workflow: WorkflowOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    correlation_id: CorrelationOption = None,
    prefix: PrefixOption = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-n", min=1, max=10_000, help="At most this many runs, newest first."
        ),
    ] = 20,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Go on from where a listing stopped.")
    ] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first, with the step each one is on."""
    descriptions: list[RunDescription] = []
    with connect(database) as client:
        # A few reads a page, without every run's input and output.
        while len(descriptions) < limit:
            page = client.search_runs(
                status=None if status is None else status.value,
                workflow=workflow,
                since=as_utc(since),
                until=as_utc(until),
                correlation_id=correlation_id,
                run_id_prefix=prefix,
                limit=min(MAX_PAGE, limit - len(descriptions)),
                cursor=cursor,
            )
            descriptions += page.runs
            cursor = page.next_cursor
            if cursor is None:
                break
    if as_json:
        print_json([run_summary(d) for d in descriptions])
        return
    filtered = status or workflow or since or until or correlation_id or prefix
    if not descriptions:
        console().print("no runs" + (" match" if filtered else " yet"))
        return
    print_table(runs_table(descriptions))
    if cursor is not None:
        console().print(
            f"the {len(descriptions)} newest runs shown; more with --cursor {cursor}",
            style="dim",
            markup=False,
        )


@runs_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run's id.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one run: status, current step and attempt, what failed, what happens next."""
    with connect(database) as client:
        description = client.describe(run_id)
        cancel_requested = client.get_run(run_id).cancel_requested
    if as_json:
        print_json(description.to_dict() | {"cancel_requested": cancel_requested})
    else:
        console().print(description_view(description, cancel_requested=cancel_requested))


@runs_app.command("watch")
def watch(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run's id.")],
    interval: Annotated[
        float, typer.Option("--interval", min=0.05, help="Seconds between looks.")
    ] = 0.5,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0, help="Give up after this many seconds.")
    ] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Follow a run live: a line each time its status or step changes, until it ends
    (exit 0 if it completed, 1 otherwise; --json: one JSON object a line)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    shown: tuple[object, ...] | None = None
    with connect(database) as client:
        while True:
            d = client.describe(run_id)
            seen = (d.status, step_line(d), len(d.completed_steps), len(d.compensations_done))
            if seen != shown:
                shown = seen
                if as_json:
                    print_json_line(run_summary(d))
                else:
                    console().print(
                        f"{when(d.updated_at, short=True)}  {d.status.value:<20} {step_line(d)}",
                        markup=False,
                        highlight=False,
                    )
            if d.status.is_terminal:
                if not as_json:
                    console().print(f"next: {d.next}", markup=False, highlight=False)
                raise typer.Exit(0 if d.status is RunStatus.COMPLETED else 1)
            if deadline is not None and time.monotonic() >= deadline:
                raise fail(
                    f"run {run_id} is still {d.status.value} after {timeout:g}s",
                    hint=f"watch it again with `legato runs watch {run_id}`",
                )
            time.sleep(interval)


@runs_app.command("history")
def history(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run's id.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a run's history: one line per record the engine wrote, oldest first."""
    with connect(database) as client:
        events = client.history(run_id)
    if as_json:
        print_json(history_json(events))
        return
    out = console()
    for line in history_lines(run_id, events, out.width):
        # soft_wrap: a line is never folded by Rich; a long one runs on, as in a log.
        out.print(line, soft_wrap=True)


def parse_arguments(input_json: str | None, args_json: str | None) -> list[Any]:
    """The workflow's positional arguments from ``--input`` (one value) or ``--args`` (a list)."""
    if input_json is not None and args_json is not None:
        raise typer.BadParameter(
            "give either --input (one argument) or --args (a JSON list), not both",
            param_hint="--input / --args",
        )
    if input_json is not None:
        return [parse_json(input_json, "--input")]
    if args_json is not None:
        value = parse_json(args_json, "--args")
        if not isinstance(value, list):
            raise typer.BadParameter(
                f"must be a JSON list of arguments, got {args_json!r}; use "
                "--input for a single argument",
                param_hint="--args",
            )
        return value
    return []


def warn_unregistered(workflow: str, run_id: str, known: list[str]) -> None:
    """Warn on stderr that no worker serves ``workflow`` here yet: often a typo."""
    close = difflib.get_close_matches(workflow, known, n=1)
    if close:
        check = f"Did you mean {close[0]!r}? Known workflows: {', '.join(known)}."
    elif known:
        check = f"Check the name for a typo; known workflows: {', '.join(known)}."
    else:
        check = "No workflow is registered yet: start a worker (legato worker MODULE:APP)."
    line = Text("Warning: ", style="bold yellow")
    line.append(
        f"no worker has ever registered workflow {workflow!r} on this database; run "
        f"{run_id} waits (pending) until one does. {check} If the name is wrong, "
        f"`legato cancel {shlex.quote(run_id)}`."
    )
    Console(stderr=True, highlight=False).print(line, soft_wrap=True)


def start(
    workflow: Annotated[str, typer.Argument(metavar="WORKFLOW", help="The workflow's name.")],
    input_json: Annotated[
        str | None,
        typer.Option(
            "--input", "-i", help="A JSON value, passed as the workflow's single argument."
        ),
    ] = None,
    args_json: Annotated[
        str | None,
        typer.Option("--args", help="A JSON list, passed as the workflow's positional arguments."),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id",
            help="The run's id (an existing run with this id is returned as is). "
            "Default: a new UUID.",
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the run to end and show how it ended.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0, help="With --wait: give up waiting after this many seconds."
        ),
    ] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a run of WORKFLOW for a worker to execute, and print its id."""
    arguments = parse_arguments(input_json, args_json)
    if timeout is not None and not wait:
        raise typer.BadParameter("only makes sense with --wait", param_hint="--timeout")
    with connect(database, create=True) as client:
        new_id = client.start(workflow, *arguments, run_id=run_id).run_id
        known = client.list_workflows()
        if workflow not in known:
            warn_unregistered(workflow, new_id, known)
        if not wait:
            if as_json:
                run = client.get_run(new_id)
                print_json({"run_id": new_id, "workflow": run.workflow, "status": run.status.value})
            else:
                typer.echo(new_id)
            return
        try:
            with waiting(f"run {new_id} started; waiting for it to end"):
                client.result(new_id, timeout)
        except RunFailed:
            pass  # shown below from the run's description
        except TimeoutError as exc:
            raise fail(
                str(exc),
                hint=f"the run goes on; follow it with `legato runs show {shlex.quote(new_id)}`",
            ) from None
        description = client.describe(new_id)
    if as_json:
        print_json(description.to_dict())
    else:
        console().print(description_view(description))
    if description.status is not RunStatus.COMPLETED:
        raise typer.Exit(1)


@runs_app.command("resume")
def resume(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run's id.")],
    by: ByOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a blocked run after deploying code that makes its recorded calls."""
    with connect(database) as client:
        status = client.resume(run_id, by=who(by))
    if as_json:
        print_json({"run_id": run_id, "status": status.value})
    else:
        console().print(
            f"run {run_id} resumed: a worker replays it with the code it runs now (if it "
            f"still diverges, it is blocked again). Follow it with `legato runs show {run_id}`."
        )


def cancel(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run's id.")],
    by: ByOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a run; its completed steps are compensated."""
    with connect(database) as client:
        before = client.get_run(run_id).status
        if before.is_terminal and before is not RunStatus.BLOCKED:
            raise fail(
                f"run {run_id!r} already ended {before.value}; there is nothing to cancel",
                hint=f"see how it ended with `legato runs show {shlex.quote(run_id)}`",
            )
        status = client.cancel(run_id, by=who(by))
    if as_json:
        print_json({"run_id": run_id, "status": status.value})
    elif status is RunStatus.CANCELLED:
        console().print(f"run {run_id} cancelled (no worker had started it)")
    else:
        console().print(
            f"cancellation of run {run_id} requested: its worker interrupts the step in "
            "flight at its next poll and compensates the steps it completed. Follow it "
            f"with `legato runs show {run_id}`."
        )
