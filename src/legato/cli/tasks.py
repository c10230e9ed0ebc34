"""``legato tasks ...``: the inbox of human tasks, through ``legato.Client``.

A workflow opens a task with ``legato.human_task``; a person lists, reads and answers it
here. The answer is checked against the task's form before anything is written, and the
run continues with it on whichever worker runs it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from legato.cli.options import ByOption, DatabaseOption, JsonOption, connect, parse_json, who
from legato.cli.render import console, print_json, print_table, task_view, tasks_table
from legato.model import TaskStatus
from legato.views import task_json

tasks_app = typer.Typer(help="List, show and complete human tasks.", no_args_is_help=True)

TaskIdArgument = Annotated[
    str, typer.Argument(metavar="TASK_ID", help="The task's id (see `legato tasks list`).")
]


@tasks_app.command("list")
def list_tasks(
    assignee: Annotated[
        str | None, typer.Option("--assignee", "-a", help="Only tasks assigned to this person.")
    ] = None,
    status: Annotated[
        TaskStatus, typer.Option("--status", "-s", help="Only tasks in this status.")
    ] = TaskStatus.OPEN,
    run_id: Annotated[
        str | None, typer.Option("--run", "-r", help="Only tasks of this run.")
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-n", min=1, max=10_000, help="At most this many tasks, oldest first."
        ),
    ] = 100,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List tasks, oldest first: open ones unless --status says otherwise."""
    with connect(database) as client:
        tasks = client.list_tasks(
            assignee=assignee, status=status.value, run_id=run_id, limit=limit
        )
    if as_json:
        print_json([task_json(t) for t in tasks])
        return
    if not tasks:
        who = f" for {assignee}" if assignee is not None else ""
        console().print(f"no {status.value} tasks{who}", markup=False)
        return
    print_table(tasks_table(tasks))
    if len(tasks) == limit:
        console().print(f"the {limit} oldest tasks shown; --limit N shows more", style="dim")


@tasks_app.command("show")
def show(
    task_id: TaskIdArgument, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Show one task: its data, its form, its status and the response it got."""
    with connect(database) as client:
        task = client.get_task(task_id)
    if as_json:
        print_json(task_json(task))
    else:
        console().print(task_view(task))


@tasks_app.command("complete")
def complete(
    task_id: TaskIdArgument,
    data_json: Annotated[
        str,
        typer.Option("--data", help="The response, as JSON; it must match the task's form."),
    ],
    by: ByOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer an open task; its run continues with the response (recorded as answered
    --by, default cli:USER)."""
    response = parse_json(data_json, "--data")
    with connect(database) as client:
        task = client.complete_task(task_id, response, by=who(by))
    if as_json:
        print_json(task_json(task))
    else:
        console().print(
            f"task {task.task_id} completed; run {task.run_id} continues with the response. "
            f"Follow it with `legato runs show {task.run_id}`.",
            markup=False,
        )


@tasks_app.command("claim")
def claim(
    task_id: TaskIdArgument,
    by: ByOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take an open task: you (--by, default cli:USER) become its assignee."""
    with connect(database) as client:
        task = client.claim_task(task_id, who(by))
    if as_json:
        print_json(task_json(task))
    else:
        console().print(f"task {task.task_id} is yours, {task.assignee}", markup=False)
