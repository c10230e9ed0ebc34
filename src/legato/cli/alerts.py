"""``legato alerts list``: what the workers found stuck or broken, through ``legato.Client``.

Every ``alert_interval`` a worker looks for stuck runs, runs that need an operator,
violated expectations, dead letters, unrouted event types and workers presumed dead
(``legato.bus.alerts``). Each is raised once and resolved when its cause clears; the list
shows both, latest raised first, and names the command that shows each raised one's
subject.
"""

from __future__ import annotations

import shlex
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from legato.cli.options import DatabaseOption, JsonOption, connect
from legato.cli.render import console, print_json, print_table, when, whole_column
from legato.model.alerts import Alert, AlertKind, AlertStatus
from legato.views import alert_json

alerts_app = typer.Typer(
    help="List alerts: stuck runs, dead letters, violated expectations…", no_args_is_help=True
)

_NONE = "—"
_MOST = 10_000
_STATUS_STYLES = {AlertStatus.RAISED: "red", AlertStatus.RESOLVED: "green"}


def alerts_table(alerts: list[Alert]) -> Table:
    """Alerts as a table: kind, subject, status, raised, resolved, times, summary."""
    table = Table()
    whole_column(table, "kind", [a.kind.value for a in alerts])
    # Not whole: an expectation's subject (name, source, trigger id) runs to some 70
    # columns, and would leave the summary a few letters wide; folded, nothing is cut.
    # The hint under the table names the command to copy.
    table.add_column("subject", overflow="fold", ratio=1)
    table.add_column("status", no_wrap=True)
    table.add_column("raised", no_wrap=True)
    table.add_column("resolved", no_wrap=True)
    table.add_column("times", justify="right")
    table.add_column("summary", overflow="fold", ratio=2)
    for a in alerts:
        table.add_row(
            a.kind.value,
            Text(a.subject),  # Text, not str: subjects are data, never Rich markup
            Text(a.status.value, style=_STATUS_STYLES.get(a.status, "")),
            when(a.raised_at, short=True),
            _NONE if a.resolved_at is None else when(a.resolved_at, short=True),
            str(a.times),
            Text(a.summary),
        )
    return table


def _detail(alert: Alert, name: str, placeholder: str) -> str:
    value = alert.details.get(name)
    return placeholder if value is None else shlex.quote(str(value))


def subject_command(alert: Alert) -> str:
    """The command that shows what ``alert`` is about (its run, dead letter, expectation…)."""
    match alert.kind:
        case AlertKind.STUCK_RUN | AlertKind.RUN_NEEDS_OPERATOR:
            return f"legato runs show {_detail(alert, 'run_id', 'RUN_ID')}"
        case AlertKind.DEAD_LETTER:
            return f"legato deadletters list --subscription {_detail(alert, 'subscription', 'S')}"
        case AlertKind.EXPECTATION_VIOLATED:
            name = _detail(alert, "expectation", "NAME")
            return f"legato expectations show {name} --key {_detail(alert, 'key', 'KEY')}"
        case AlertKind.UNROUTED_EVENT:
            return f"legato events list --unrouted --type {_detail(alert, 'type', 'TYPE')}"
        case AlertKind.DEAD_WORKER:
            return "legato workers list"
    return "legato alerts list --json"  # a kind newer than this CLI


def hint_lines(alerts: list[Alert]) -> list[str]:
    """For each kind with raised alerts, the command that shows the latest one's subject."""
    raised: dict[AlertKind, list[Alert]] = {}
    for a in alerts:
        if a.status is AlertStatus.RAISED:
            raised.setdefault(a.kind, []).append(a)
    if not raised:
        return []
    widest = max(len(kind.value) for kind in raised)
    lines = ["a raised alert is resolved once its cause clears; look closer with:"]
    for kind, of_kind in raised.items():
        latest = "" if len(of_kind) == 1 else f"  (the latest of {len(of_kind)})"
        lines.append(f"  {kind.value:<{widest}}  {subject_command(of_kind[0])}{latest}")
    return lines


def _nothing(status: AlertStatus | None, kind: AlertKind | None) -> str:
    if status is None and kind is None:
        return (
            "no alerts yet: the workers serving an app on this database look for them every "
            "alert_interval (10 s by default)"
        )
    words = [w for w in (status and status.value, kind and kind.value) if w]
    return f"no {' '.join(words)} alerts"


@alerts_app.command("list")
def list_alerts(
    status: Annotated[
        AlertStatus | None, typer.Option("--status", "-s", help="Only alerts in this status.")
    ] = None,
    kind: Annotated[
        AlertKind | None,
        typer.Option(
            "--kind",
            "-k",
            metavar="KIND",
            help="Only alerts of this kind: " + ", ".join(k.value for k in AlertKind) + ".",
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-n", min=1, max=_MOST, help="At most this many alerts, latest raised first."
        ),
    ] = 100,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List alerts, latest raised first: what is stuck or broken, and what has cleared."""
    with connect(database) as client:
        alerts = client.list_alerts(status=status, kind=kind, limit=limit)
    if as_json:
        print_json([alert_json(a) for a in alerts])
        return
    out = console()
    if not alerts:
        out.print(_nothing(status, kind), markup=False)
        return
    print_table(alerts_table(alerts))
    if len(alerts) == limit:
        out.print(f"the {limit} latest alerts shown; --limit N shows more", style="dim")
    for line in hint_lines(alerts):
        out.print(Text(line, style="dim"))
