"""How runs and tasks look on screen (Rich) and in ``--json`` (orjson): one place for both."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

import orjson
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.json import JSON
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from legato.model import HistoryEvent, RunStatus, Task, TaskStatus, records
from legato.model.description import RunDescription

_STATUS_STYLES = {
    RunStatus.PENDING: "cyan",
    RunStatus.RUNNING: "blue",
    RunStatus.SLEEPING: "blue",
    RunStatus.WAITING: "blue",
    RunStatus.COMPENSATING: "yellow",
    RunStatus.COMPLETED: "green",
    RunStatus.FAILED: "bold red",
    RunStatus.COMPENSATED: "yellow",
    RunStatus.COMPENSATION_FAILED: "bold red",
    RunStatus.CANCELLED: "magenta",
    RunStatus.BLOCKED: "bold red",
}
_NONE = "—"


def console() -> Console:
    """The stdout console (made per call, so it sees the terminal as it is now)."""
    return Console(highlight=False)


def waiting(message: str) -> AbstractContextManager[object]:
    """A spinner on stderr while a long call runs, only when a person is watching."""
    err = Console(stderr=True)
    return err.status(message) if err.is_terminal else nullcontext()


def print_json_line(data: Any) -> None:
    """Write ``data`` as one line of JSON on stdout (a stream of them: ``runs watch``)."""
    sys.stdout.buffer.write(orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS))
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout: datetimes ISO 8601, enums by value."""
    sys.stdout.buffer.write(
        orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    )
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


def whole_column(table: Table, header: str, values: list[str], **options: Any) -> None:
    """Add a column that never cuts its values: ids and names are copied, so they stay whole.

    Rich shrinks every column, ellipsis and all, when a table is wider than the terminal;
    a minimum width as wide as the longest value stops that (see ``print_table``).
    """
    widest = max([cell_len(header), *(cell_len(v) for v in values)])
    table.add_column(header, no_wrap=True, min_width=widest, **options)


def print_table(table: Table) -> None:
    """Print ``table`` on stdout, wider than the terminal if that keeps its ids whole.

    The other columns wrap first; only when even the narrowest table with whole ids does
    not fit are the lines longer than the terminal (it wraps them, nothing is cut).
    """
    out = console()
    needed = Measurement.get(out, out.options.update_width(10_000), table).minimum
    if needed > out.width:
        out = Console(highlight=False, width=needed)
    out.print(table)


def status_text(status: RunStatus) -> Text:
    """A run status, coloured by how worried the reader should be."""
    return Text(status.value, style=_STATUS_STYLES.get(status, ""))


def when(at: datetime, *, short: bool = False) -> str:
    """A time in local time: in full, or (``short``, for lists) without today's date."""
    return _when_short(at) if short else _when(at)


def _when(at: datetime) -> str:
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _when_short(at: datetime) -> str:
    # Lists are scanned, not read: today's times need no date.
    local = at.astimezone()
    if local.date() == datetime.now(local.tzinfo).date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")


def _error_line(error: dict[str, Any] | None) -> str:
    if not error:
        return _NONE
    where = []
    if error.get("step"):
        kind = "compensation of" if error.get("compensation") else "step"
        where.append(f"{kind} {error['step']}")
    if error.get("attempt"):
        where.append(f"attempt {error['attempt']}")
    suffix = f"  ({', '.join(where)})" if where else ""
    return f"{error.get('type')}: {error.get('message')}{suffix}"


def step_line(description: RunDescription) -> str:
    """Which step the run is on, or where it stopped, in a few words."""
    d = description
    if d.current_step is not None:
        step = next((s for s in reversed(d.steps) if s.name == d.current_step), None)
        doing = "compensating " if d.status is RunStatus.COMPENSATING else ""
        state = ""
        if step is not None and step.status == "retrying" and step.retry_at is not None:
            state = f", retrying at {_when(step.retry_at)}"
        return f"{doing}{d.current_step} (attempt {d.attempt}{state})"
    failed = next((s for s in reversed(d.steps) if s.status == "failed"), None)
    if failed is not None:
        return f"{failed.name} failed (attempt {failed.attempts})"
    if d.status is RunStatus.PENDING:
        return "not started"
    if d.status is RunStatus.COMPLETED:
        return "all steps done"
    return _NONE


def run_summary(description: RunDescription) -> dict[str, Any]:
    """The JSON of one row of ``legato runs list``."""
    d = description
    return {
        "run_id": d.run_id,
        "workflow": d.workflow,
        "status": d.status.value,
        "current_step": d.current_step,
        "attempt": d.attempt,
        "step": step_line(d),
        "last_error": d.last_error,
        "completed_steps": d.completed_steps,
        "compensations_done": d.compensations_done,
        "compensations_pending": d.compensations_pending,
        "next": d.next,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    }


def runs_table(descriptions: list[RunDescription], *, title: str | None = None) -> Table:
    """The runs as a table: id, workflow, status, step, last update."""
    table = Table(title=title, show_lines=False)
    whole_column(table, "run id", [d.run_id for d in descriptions])
    whole_column(table, "workflow", [d.workflow for d in descriptions])
    table.add_column("status", no_wrap=True)
    table.add_column("step", overflow="fold")
    table.add_column("updated", no_wrap=True)
    for d in descriptions:
        table.add_row(
            Text(d.run_id),  # Text, not str: names and ids are data, never Rich markup
            Text(d.workflow),
            status_text(d.status),
            step_line(d),
            _when_short(d.updated_at),
        )
    return table


def _names(names: list[str]) -> str:
    return ", ".join(names) if names else _NONE


def _json_line(value: Any, limit: int = 200) -> str:
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def description_view(
    description: RunDescription, *, cancel_requested: bool = False
) -> RenderableType:
    """``legato runs show``: status, step, error, saga state and what happens next.

    ``cancel_requested`` (from the run's row) flags a run whose worker has yet to act
    on a cancellation: its description alone still reads as if it would go on.
    """
    d = description
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    facts.add_row("workflow", d.workflow)
    facts.add_row("status", status_text(d.status))
    facts.add_row("step", step_line(d))
    facts.add_row(
        "last error", Text(_error_line(d.last_error), style="red" if d.last_error else "")
    )
    facts.add_row("completed", _names(d.completed_steps))
    facts.add_row("compensated", _names(d.compensations_done))
    facts.add_row("to compensate", _names(d.compensations_pending))
    facts.add_row("input", _json_line(d.input))
    cause = started_by(d.input)
    if cause is not None:
        facts.add_row("started by", cause)
    if d.status is RunStatus.COMPLETED:
        facts.add_row("output", _json_line(d.output))
    facts.add_row("created", _when(d.created_at))
    facts.add_row("updated", _when(d.updated_at))
    if cancel_requested and not d.status.is_terminal:
        facts.add_row(
            "cancel",
            Text(
                "requested: the worker stops the run at its next call "
                "and compensates its completed steps",
                style="magenta",
            ),
        )
    facts.add_row("next:", Text(d.next, style="bold"))

    steps = Table(show_edge=False, box=None, padding=(0, 2), header_style="bold dim")
    for column in ("#", "step", "status", "attempts", "compensation"):
        steps.add_column(column)
    for s in d.steps:
        steps.add_row(
            s.key,
            s.name,
            s.status,
            str(s.attempts),
            s.compensation or ("pending" if s.name in d.compensations_pending else _NONE),
        )
    parts: list[RenderableType] = [facts]
    if d.steps:
        parts += [Text(""), steps]
    if d.published:
        parts += [Text(""), published_table(d)]
    return Panel(Group(*parts), title=f"run {d.run_id}", title_align="left", expand=False)


def started_by(stored_input: Any) -> Text | None:
    """The event a run was started with (a trigger's, or an expectation's violation), as
    a line for ``runs show``; None for a run started with plain arguments."""
    if not isinstance(stored_input, list) or not stored_input:
        return None
    event = stored_input[0]
    if not isinstance(event, dict) or "specversion" not in event or "type" not in event:
        return None
    text = Text(f"event {event['type']} {event.get('id', '?')}")
    data = event.get("data")
    if event["type"] == "legato.expectation.violated" and isinstance(data, dict):
        missing = ", ".join(str(m) for m in data.get("missing") or []) or "?"
        text = Text(
            f"violation of expectation {data.get('expectation')!s} for key {data.get('key')!s}"
            f" ({missing} missing at {data.get('deadline')!s}); event {event.get('id', '?')}",
            style="red",
        )
    correlation = event.get("correlationid")
    if correlation:
        text.append(f"  (legato flows show {correlation})", style="dim")
    return text


def published_table(description: RunDescription) -> Table:
    """The events a run published and the requests it made, with the replies awaited."""
    table = Table(show_edge=False, box=None, padding=(0, 2), header_style="bold dim")
    for column in ("#", "published", "event id", "reply"):
        table.add_column(column)
    for p in description.published:
        if p.awaiting is None:
            reply = Text(_NONE)
        elif p.replied:
            reply = Text("replied", style="green")
        elif p.timed_out:
            reply = Text("timed out", style="yellow")
        else:
            reply = Text(f"awaits {', '.join(p.awaiting)}", style="magenta")
        key = p.key if p.step is None else f"{p.key} (step {p.step})"
        table.add_row(key, Text(p.type), Text(p.event_id), reply)
    return table


def _clock(ts: float, day: datetime) -> str:
    """A ``data`` time (Unix seconds) in local time, with its date if not ``day``'s."""
    when = datetime.fromtimestamp(ts).astimezone()
    return when.strftime("%H:%M:%S" if when.date() == day.date() else "%Y-%m-%d %H:%M:%S")


def _until(ts: float | None, at: datetime) -> str:
    return "" if ts is None else f"until {_clock(ts, at)}"


def _error(type_: str, message: str) -> str:
    return f"{type_.rpartition('.')[2]}: {message}"


def record_summary(record: records.Record, at: datetime) -> str:
    """A typed history record in a few words (the CLI's one-line view of its data)."""
    match record:
        case records.AttemptFailed():
            text = _error(record.type, record.message)
            if record.final or record.retry_at is None:
                plural = "" if record.attempts == 1 else "s"
                return f"{text}; gave up after {record.attempts} attempt{plural}"
            return (
                f"{text}; retry at {_clock(record.retry_at, at)} "
                f"(attempt {record.attempt + 1} of {record.max_attempts})"
            )
        case records.RunFailed():
            text = _error(record.type, record.message)
            if record.step is not None:
                text += f"; in step {record.step} after {record.attempts} attempt(s)"
            return text + ("; cancelled" if record.cancelled else "")
        case records.RunBlocked():
            return (
                f"replay diverged at #{record.seq}: history holds {record.recorded}, "
                f"the code asks for {record.requested}"
            )
        case records.StepCompleted():
            compensable = "" if record.args is None else " (compensable)"
            return f"-> {_json_line(record.result)}{compensable}"
        case records.RunCompleted():
            return f"-> {_json_line(record.output)}"
        case records.Value():
            return f"= {_json_line(record.value)}"
        case records.TimerStarted():
            return _until(record.wake_at, at)
        case records.WaitStarted():
            return _until(record.timeout_at, at) or "no timeout"
        case records.TaskCreated():
            return f"task {record.task_id} {_until(record.timeout_at, at)}".rstrip()
        case records.ChildStarted():
            return f"run {record.child_run_id}"
        case records.SignalReceived():
            return f"signal {record.signal_id}: {_json_line(record.payload)}"
        case records.RunContinued():
            return f"as run {record.run_id}"
        case records.UnknownRecord():
            return "" if record.raw is None else _json_line(record.raw)
    return ""


def history_lines(run_id: str, events: list[HistoryEvent], width: int) -> list[Text]:
    """``legato runs history``: one line per record, oldest first, meant to fit ``width``.

    Position, time, kind, call (``#key name``), the attempt when some call was retried,
    then the data cut to what is left of the line; ``--json`` has the records whole.
    """
    retried = any(e.attempt > 1 for e in events)
    rows = [
        (
            str(e.pos),
            e.at.astimezone().strftime("%H:%M:%S"),
            str(e.kind),
            " ".join(p for p in (f"#{e.key}" if e.key else "", e.name or "") if p),
            *([str(e.attempt) if e.attempt else ""] if retried else []),
        )
        for e in events
    ]
    header = ("pos", "time", "kind", "call", *(["try"] if retried else []))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        pos, *rest = cells
        return " ".join(
            [pos.rjust(widths[0]), *(c.ljust(w) for c, w in zip(rest, widths[1:], strict=True))]
        )

    first = events[0].at.astimezone().strftime("%Y-%m-%d") if events else ""
    lines = [
        Text(f"history of run {run_id}: {len(events)} records from {first}", style="bold"),
        Text(line(header) + " data", style="dim"),
    ]
    for event, row in zip(events, rows, strict=True):
        prefix = line(row)
        limit = max(width - len(prefix) - 1, 16)
        summary = record_summary(event.record, event.at)
        if len(summary) > limit:
            summary = summary[: limit - 1] + "…"
        text = Text(prefix if summary else prefix.rstrip())
        if summary:
            text.append(" " + summary, style="dim" if str(event.kind).endswith("started") else "")
        lines.append(text)
    return lines


_TASK_STYLES = {
    TaskStatus.OPEN: "cyan",
    TaskStatus.COMPLETED: "green",
    TaskStatus.EXPIRED: "yellow",
    TaskStatus.CANCELLED: "magenta",
}


def _due(task: Task, short: bool) -> Text:
    if task.due_at is None:
        return Text(_NONE)
    at = _when_short(task.due_at) if short else _when(task.due_at)
    late = task.status is TaskStatus.OPEN and task.due_at <= datetime.now(task.due_at.tzinfo)
    return Text(at + (" (overdue)" if late else ""), style="red" if late else "")


def tasks_table(tasks: list[Task]) -> Table:
    """The inbox as a table: id, name, status, assignee, run, created, due."""
    table = Table()
    whole_column(table, "task id", [t.task_id for t in tasks])
    whole_column(table, "name", [t.name for t in tasks])
    table.add_column("status", no_wrap=True)
    table.add_column("assignee")
    whole_column(table, "run", [t.run_id for t in tasks])
    table.add_column("created")
    table.add_column("due")
    for t in tasks:
        table.add_row(
            Text(t.task_id),  # Text, not str: names and ids are data, never Rich markup
            Text(t.name),
            Text(t.status.value, style=_TASK_STYLES.get(t.status, "")),
            Text(t.assignee or _NONE),
            Text(t.run_id),
            _when_short(t.created_at),
            _due(t, short=True),
        )
    return table


def _task_next(task: Task) -> str:
    if task.status is TaskStatus.OPEN:
        return f"answer it: legato tasks complete {task.task_id} --data JSON"
    if task.status is TaskStatus.COMPLETED:
        return f"nothing: run {task.run_id} continued with the response"
    return f"nothing: the task is {task.status.value} and takes no response"


def task_view(task: Task) -> RenderableType:
    """``legato tasks show``: who, for which run, the data, the form and the response."""
    t = task
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    facts.add_row("name", Text(t.name))
    facts.add_row("status", Text(t.status.value, style=_TASK_STYLES.get(t.status, "")))
    facts.add_row("assignee", Text(t.assignee or _NONE))
    facts.add_row("run", Text(t.run_id))
    facts.add_row("created", _when(t.created_at))
    facts.add_row("due", _due(t, short=False))
    if t.completed_at is not None:
        by = Text("") if t.completed_by is None else Text(f" by {t.completed_by}")
        facts.add_row("completed", Text.assemble(_when(t.completed_at), by))
    facts.add_row("data", JSON.from_data(t.data, default=str))
    facts.add_row("form", _NONE if t.form is None else JSON.from_data(t.form, default=str))
    if t.status is TaskStatus.COMPLETED:
        facts.add_row("response", JSON.from_data(t.response, default=str))
    facts.add_row("next:", Text(_task_next(t), style="bold"))
    return Panel(facts, title=Text(f"task {t.task_id}"), title_align="left", expand=False)
