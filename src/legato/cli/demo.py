"""``legato demo``: the course purchase, happy path and refund path, in a few seconds.

The demo runs ``examples/course_purchase`` with the engine in this process, on a new
SQLite file in a temporary directory, then shows each run as ``legato runs show`` would:
status, steps, compensations, and for the failed one what failed and what happens next.
Then the reactions, read from the event log and its deliveries: what each subscriber did
with the ``purchase.completed`` the completed run published (one retries, after the run
ended), and that the refunded run published nothing. The file is kept, and the demo ends
with the command that shows the refunded run from it.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import shlex
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

import legato
from legato.cli.errors import fail
from legato.cli.options import JsonOption, resolve_database
from legato.cli.render import console, print_json, print_table, status_text, step_line, whole_column
from legato.cli.render_bus import status_text as delivery_status_text
from legato.flowchart import outcome
from legato.model import RunStatus
from legato.model.deliveries import Delivery, DeliveryStatus, StoredEvent
from legato.model.description import RunDescription
from legato.storage import DATABASE_ENV, parse_database_url
from legato.views import delivery_json, stored_event_json

EXAMPLE_PACKAGE = "course_purchase"
"""The name the example is imported under (it shows in recorded error types)."""

REACTIONS_TIMEOUT_S = 10.0
"""How long the demo waits for the subscribers' deliveries to settle (they take < 1 s)."""
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Reaction:
    """One event a run published, and each subscription's delivery of it."""

    published: StoredEvent
    deliveries: list[Delivery]

    def seconds_to_settle(self, delivery: Delivery) -> float:
        """From the event's commit to the delivery's last change (its settle, once done)."""
        return (delivery.updated_at - self.published.recorded_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form: the event and its deliveries as ``legato events show
        --json`` gives them, each delivery with the seconds it took to settle."""
        stored = self.published
        return {
            **stored_event_json(stored),
            "deliveries": [
                {
                    **delivery_json(d, stored),
                    "seconds_after_published": round(self.seconds_to_settle(d), 3),
                }
                for d in self.deliveries
            ],
        }


@dataclass(slots=True)
class Story:
    """What the demo ran: each run's description, and the reactions to what it published."""

    descriptions: list[RunDescription]
    reactions: dict[str, list[Reaction]] = field(default_factory=dict)  # by run id


def find_example() -> Path | None:
    """The ``examples/course_purchase`` directory of a source checkout, if there is one."""
    candidates = [
        # src/legato/__init__.py -> the checkout root, for an editable install.
        Path(legato.__file__).resolve().parents[2] / "examples" / EXAMPLE_PACKAGE,
        Path.cwd() / "examples" / EXAMPLE_PACKAGE,
    ]
    return next((c for c in candidates if (c / "app.py").is_file()), None)


def load_example(directory: Path) -> ModuleType:
    """Import the example's ``app`` module from ``directory``, as a package by file path.

    Each call imports it afresh, so each demo starts with fresh fake services.
    """
    for name in [n for n in sys.modules if n.partition(".")[0] == EXAMPLE_PACKAGE]:
        del sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        EXAMPLE_PACKAGE, directory / "__init__.py", submodule_search_locations=[str(directory)]
    )
    if spec is None or spec.loader is None:  # pragma: no cover - the file exists
        raise fail(f"cannot load the example from {directory}")
    package = importlib.util.module_from_spec(spec)
    sys.modules[EXAMPLE_PACKAGE] = package
    spec.loader.exec_module(package)
    # app.py imports .services relatively; the package registered above resolves it.
    return importlib.import_module(f"{EXAMPLE_PACKAGE}.app")


async def run_story(example: ModuleType, database: str, suffix: str) -> Story:
    """Run both purchases with the engine in this process; describe the runs, then wait
    for the subscribers to finish with what the runs published."""
    app: legato.App = example.app
    app.use_database(database)
    # The gateway takes the first charge but loses its answer: the retry reuses the
    # step key, so the learner is charged once. The demo shows that below.
    example.payments.lose_next_responses(1)
    # The recommendations service fails its first call: that delivery retries on its own,
    # after the purchase completed.
    example.recommendations.fail_next_calls(1)
    story = Story([])
    async with app:
        for purchase in (example.HAPPY_PURCHASE, example.COURSE_FULL_PURCHASE):
            run = await app.start(
                example.purchase_course, purchase, run_id=f"purchase-{purchase['id']}{suffix}"
            )
            try:
                await run.result(timeout=30)
            except legato.errors.RunFailed:
                pass  # the description below says how it ended
            story.descriptions.append(await run.describe())
        story.reactions = await settled_reactions(app, [d.run_id for d in story.descriptions])
    return story


async def settled_reactions(
    app: legato.App, run_ids: list[str], timeout_s: float = REACTIONS_TIMEOUT_S
) -> dict[str, list[Reaction]]:
    """The events each run published, with their deliveries once none is pending.

    A run never waits for its subscribers; the demo does, to show what each did. After
    ``timeout_s`` it returns them as they are (a pending one shows as pending).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        reactions: dict[str, list[Reaction]] = {}
        for run_id in run_ids:
            reactions[run_id] = [
                Reaction(stored, await app.deliveries(stored.event.id, stored.event.source))
                for stored in await app.list_events(run_id=run_id)
            ]
        is_settled = all(
            d.status is not DeliveryStatus.PENDING
            for run_reactions in reactions.values()
            for reaction in run_reactions
            for d in reaction.deliveries
        )
        if is_settled or loop.time() >= deadline:
            return reactions
        await asyncio.sleep(_POLL_S)


def _effects(example: ModuleType) -> list[dict[str, Any]]:
    rows = []
    for purchase in (example.HAPPY_PURCHASE, example.COURSE_FULL_PURCHASE):
        charges = example.payments.charges_for(purchase["id"])
        rows.append(
            {
                "purchase": purchase["id"],
                "learner": purchase["learner"],
                "course": purchase["course"],
                "payments": [
                    {
                        "payment_id": c.payment_id,
                        "amount_cents": c.amount_cents,
                        "idempotency_key": c.idempotency_key,
                        "refunded": c.refunded,
                    }
                    for c in charges
                ],
                "enrolled": example.enrollments.is_enrolled(
                    purchase["learner"], purchase["course"]
                ),
            }
        )
    return rows


def _observers(example: ModuleType) -> dict[str, Any]:
    """What the fake mailer, analytics and recommendations services saw."""
    return {
        "receipts": [
            {"to": e.to, "subject": e.subject, "idempotency_key": e.idempotency_key}
            for e in example.mailer.sent
        ],
        "mailer_calls": example.mailer.send_calls,
        "conversions": dict(example.analytics.conversions),
        "revenue_cents": example.analytics.revenue_cents,
        "recommendations": {
            "refreshed": list(example.recommendations.refreshed),
            "calls": example.recommendations.refresh_calls,
            "failures": list(example.recommendations.failures),
        },
    }


def _answer(d: RunDescription) -> Text:
    """What step, what failed, what next: the three lines an operator needs."""
    text = Text()
    text.append(f"{d.run_id}", style="bold").append(" ended ").append(status_text(d.status))
    if d.last_error:
        error = d.last_error
        text.append("\n  step:   ", style="bold").append(step_line(d))
        text.append("\n  failed: ", style="bold").append(
            f"{error.get('type')}: {error.get('message')}", style="red"
        )
        if d.compensations_done:
            text.append("\n  undone: ", style="bold").append(
                ", ".join(f"{name} (its refund ran)" for name in d.compensations_done)
            )
    text.append("\n  next:   ", style="bold").append(d.next)
    return text


def _print_tables(
    descriptions: list[RunDescription], effects: list[dict[str, Any]], gateway_calls: int
) -> None:
    out = console()
    runs = Table(title="Course purchase: two runs", title_justify="left")
    whole_column(runs, "run id", [d.run_id for d in descriptions])
    for column in ("status", "completed steps", "compensations"):
        runs.add_column(column)
    for d in descriptions:
        runs.add_row(
            Text(d.run_id),
            status_text(d.status),
            "\n".join(d.completed_steps) or "—",
            "\n".join(d.compensations_done) or "—",
        )
    print_table(runs)
    for d in descriptions:
        if d.status is not RunStatus.COMPLETED:
            out.print(_answer(d))
    out.print()

    services = Table(title="What the fake services saw", title_justify="left")
    for column in ("purchase", "learner → course", "payments taken", "refunded", "enrolled"):
        services.add_column(column)
    for row in effects:
        payments = row["payments"]
        services.add_row(
            row["purchase"],
            f"{row['learner']} → {row['course']}",
            ", ".join(p["payment_id"] for p in payments) or "—",
            "yes" if any(p["refunded"] for p in payments) else "no",
            "yes" if row["enrolled"] else "no",
        )
    out.print(services)
    out.print(
        f"The gateway was called {gateway_calls} times and took "
        f"{sum(len(r['payments']) for r in effects)} payments: its first answer was "
        "lost, and the retry reused legato.step_key() as idempotency key."
    )
    out.print(
        "A learner charged but not enrolled: the run ended [yellow]compensated[/] and "
        "its refund ran."
    )


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _delivery_text(d: Delivery) -> Text:
    """``done after 2 attempts`` (as ``legato flows show`` says it), coloured by status."""
    status = delivery_status_text(d.status)
    return Text(outcome(d), style=status.style)


def _print_reactions(story: Story, observers: dict[str, Any]) -> None:
    """What each subscriber did with what each run published, then what they saw."""
    out = console()
    rows: list[tuple[str, str, Text, str]] = []  # (run and event, subscriber, delivery, after)
    retried: list[str] = []
    ended = {d.run_id: d.updated_at for d in story.descriptions}
    for run_id, reactions in story.reactions.items():
        if not reactions:
            rows.append((f"{run_id}\nnothing", "—", Text("—"), "—"))
        for reaction in reactions:
            event = reaction.published.event
            where = f"{run_id}\n{event.type}"
            if not reaction.deliveries:
                rows.append((where, "nobody subscribed", Text("—"), "—"))
            for d in reaction.deliveries:
                seconds = reaction.seconds_to_settle(d)
                rows.append((where, d.subscription, _delivery_text(d), f"{seconds:.2f}s"))
                where = ""  # one event's deliveries read as one group
                if d.attempts > 1 and d.status is DeliveryStatus.DONE:
                    late = d.updated_at > ended[run_id]
                    retried.append(
                        f"{d.subscription} failed {_times(d.attempts - 1)} and was retried: "
                        f"done {seconds:.2f}s after {event.type}"
                        + (f", when {run_id} had already completed." if late else ".")
                    )

    table = Table(
        title="Reactions: what each subscriber did with what the runs published",
        title_justify="left",
    )
    whole_column(table, "run → event", [line for r in rows for line in r[0].splitlines()])
    whole_column(table, "subscriber", [r[1] for r in rows])
    table.add_column("delivery", no_wrap=True)
    table.add_column("after", justify="right", no_wrap=True)
    for where, subscriber, delivery, after in rows:
        table.add_row(Text(where), Text(subscriber), delivery, after)
    out.print()
    print_table(table)
    out.print(
        "after: from the event's commit to the delivery's settle. The runs never wait "
        "for their subscribers, so none can block or fail a purchase.",
        markup=False,
    )
    for line in retried:
        out.print(line, markup=False)
    for run_id, reactions in story.reactions.items():
        if not reactions:
            out.print(
                f"{run_id} published nothing: a refunded purchase sends no receipt, counts "
                "no conversion and refreshes no recommendations.",
                markup=False,
            )
    receipts = observers["receipts"]
    recommendations = observers["recommendations"]
    conversions = ", ".join(f"{c}: {n}" for c, n in observers["conversions"].items())
    out.print(
        f"The observers saw: {len(receipts)} receipt(s) emailed "
        f"(to {', '.join(r['to'] for r in receipts) or 'nobody'}); conversions counted: "
        f"{conversions or 'none'}; recommendations refreshed for "
        f"{', '.join(recommendations['refreshed']) or 'nobody'} in "
        f"{recommendations['calls']} call(s), {len(recommendations['failures'])} failed.",
        markup=False,
    )


def _print_next(story: Story, url: str) -> None:
    """Where the runs are kept, and the exact commands that tell their stories: the flow
    of what the completed purchase set off, then the refund (last, ready to paste)."""
    descriptions = story.descriptions
    refunded = next(
        (d for d in descriptions if d.status is not RunStatus.COMPLETED), descriptions[-1]
    )
    correlation = next(
        (
            r.published.event.correlationid
            for reactions in story.reactions.values()
            for r in reactions
            if r.published.event.correlationid
        ),
        None,
    )
    path = parse_database_url(url).path
    where = url if path is None else str(Path(path).absolute())
    database = f"--database {shlex.quote(url)}"
    out = console()
    out.print(f"The runs are kept in {where}.", markup=False, soft_wrap=True)
    if correlation is not None:
        out.print("What the completed purchase set off, event by event:", markup=False)
        out.print(
            f"  legato flows show {shlex.quote(correlation)} {database}",
            markup=False,
            style="bold",
            soft_wrap=True,
        )
    out.print("The refunded one, step by step:", markup=False)
    out.print(
        f"  legato runs show {shlex.quote(refunded.run_id)} {database}",
        markup=False,
        style="bold",
        soft_wrap=True,
    )


def demo(
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            "-d",
            metavar="URL",
            help="Run on this database URL (default: a new SQLite file in a temporary "
            "directory). Either way the runs are kept for `legato runs show`.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the course-purchase example (happy path and a refund); show runs and reactions."""
    directory = find_example()
    if directory is None:
        raise fail(
            "the course-purchase example is not next to this copy of legato",
            hint="run `legato demo` from a source checkout of legato (or from the "
            "directory that holds examples/course_purchase)",
        )
    # The example's App reads LEGATO_DATABASE_URL when it is created; the demo runs on its
    # own database, so a value meant for other commands must not stop it.
    saved = os.environ.pop(DATABASE_ENV, None)
    try:
        example = load_example(directory)
    finally:
        if saved is not None:
            os.environ[DATABASE_ENV] = saved
    if database:
        url = resolve_database(database)
        # On a database used before, the same ids would return the previous demo's runs.
        suffix = f"-{uuid.uuid4().hex[:6]}"
    else:
        # A new directory each time: the file outlives the demo, for `legato runs show`.
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='legato-demo-')) / 'demo.db'}"
        suffix = ""
    story = asyncio.run(run_story(example, url, suffix))
    effects = _effects(example)
    observers = _observers(example)
    gateway_calls: int = example.payments.authorize_calls
    if as_json:
        print_json(
            {
                "database": url,
                "runs": [d.to_dict() for d in story.descriptions],
                "services": effects,
                "gateway_calls": gateway_calls,
                "reactions": [
                    {"run_id": run_id, "events": [r.to_dict() for r in reactions]}
                    for run_id, reactions in story.reactions.items()
                ],
                "observers": observers,
            }
        )
        return
    _print_tables(story.descriptions, effects, gateway_calls)
    _print_reactions(story, observers)
    out = console()
    out.print()
    _print_next(story, url)
