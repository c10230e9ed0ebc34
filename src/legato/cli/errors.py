"""How errors read on the command line: one table, one place.

Every ``legato`` command runs inside :class:`LegatoGroup`, which turns the errors a user
can cause (a wrong name, a wrong id, a bad URL, a file that is not ours) into one line on
stderr, a hint about what to do, and an exit code, instead of a traceback:

- exit 2: the command line asked for something impossible (unknown workflow, bad JSON,
  arguments that do not serialize, a database URL Legato cannot use, a task response
  that does not match the task's form, an event that is not a valid CloudEvent, a
  subscription nobody registered). Click's own usage errors (a bad ``--status`` value,
  a missing argument) exit 2 as well.
- exit 1: the request was fine but could not be done (no such run, task or event, the
  database failed, the awaited run did not complete, a signal to a run that has ended,
  a task that is no longer open).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from legato import errors

USAGE = 2
"""Exit code when the command line itself is wrong."""

FAILURE = 1
"""Exit code when a well-formed request could not be carried out."""


@dataclass(frozen=True, slots=True)
class Problem:
    """What the user sees for one kind of error.

    ``RUN_ID`` and ``TASK_ID`` in the hint stand for the ids the error carries; they are
    printed as the real ids when it carries them, so the hint can be pasted as it is.
    """

    exit_code: int
    hint: str | None = None

    def hint_for(self, exc: BaseException) -> str | None:
        """The hint, with the ids ``exc`` carries in place of the placeholders."""
        hint = self.hint
        if hint is None:
            return None
        for placeholder, attribute in (("RUN_ID", "run_id"), ("TASK_ID", "task_id")):
            value = getattr(exc, attribute, None)
            if isinstance(value, str) and value:
                hint = hint.replace(placeholder, shlex.quote(value))
        return hint


# Most specific first: the first matching row wins.
_PROBLEMS: list[tuple[type[BaseException], Problem]] = [
    (
        errors.UnknownWorkflow,
        Problem(
            USAGE,
            "list the registered ones with `legato workflows "
            "list`; a worker registers its app's workflows",
        ),
    ),
    (errors.PayloadError, Problem(USAGE, "pass plain JSON values (integers must fit in 64 bits)")),
    (errors.RunAlreadyExists, Problem(USAGE, "choose another --run-id")),
    (errors.DefinitionError, Problem(USAGE)),
    # The message lists the accepted forms, and names LEGATO_DATABASE_URL when it is to blame.
    (errors.ConfigurationError, Problem(USAGE)),
    (
        errors.RunNotFound,
        Problem(
            FAILURE, "list runs with `legato runs list`, and check --database / LEGATO_DATABASE_URL"
        ),
    ),
    (errors.RunFailed, Problem(FAILURE, "see why with `legato runs show RUN_ID`")),
    (
        errors.RunFinished,
        Problem(FAILURE, "see how it ended with `legato runs show RUN_ID`; nothing was sent"),
    ),
    (
        errors.InvalidTaskResponse,
        Problem(
            USAGE,
            "see the form with `legato tasks show TASK_ID`; the task is still open "
            "and nothing was written",
        ),
    ),
    (
        errors.TaskNotFound,
        Problem(
            FAILURE,
            "list open tasks with `legato tasks list`, and check --database / LEGATO_DATABASE_URL",
        ),
    ),
    (errors.TaskClosed, Problem(FAILURE, "see it with `legato tasks show TASK_ID`")),
    (errors.RunError, Problem(FAILURE, "see the run with `legato runs show RUN_ID`")),
    (errors.InvalidEvent, Problem(USAGE, "fix the event; nothing was published")),
    (
        errors.UnknownSubscription,
        Problem(USAGE, "a worker registers its app's subscriptions; nothing was changed"),
    ),
    (
        errors.EventNotFound,
        Problem(FAILURE, "check the id (and --source), and --database / LEGATO_DATABASE_URL"),
    ),
    (errors.TokenExists, Problem(USAGE, "see the names taken with `legato tokens list`")),
    (
        errors.TokenNotFound,
        Problem(FAILURE, "list tokens with `legato tokens list`; nothing was revoked"),
    ),
    (errors.SchemaTooNew, Problem(FAILURE)),
    (
        errors.NotALegatoDatabase,
        Problem(
            FAILURE,
            "if the file held your runs, restore it from a backup; otherwise point "
            "--database at a new file (Legato has not changed this one)",
        ),
    ),
    (errors.StorageError, Problem(FAILURE)),
    (errors.LegatoError, Problem(FAILURE)),
    (TimeoutError, Problem(FAILURE, "the run goes on; follow it with `legato runs show RUN_ID`")),
]


def problem_for(exc: BaseException) -> Problem | None:
    """The problem row for ``exc``, or None when it is a bug rather than a user's error."""
    for kind, problem in _PROBLEMS:
        if isinstance(exc, kind):
            return problem
    return None


def report(exc: BaseException, problem: Problem) -> None:
    """Print ``exc`` and its hint on stderr, without markup surprises from the message."""
    console = Console(stderr=True, highlight=False)
    line = Text("Error: ", style="bold red")
    line.append(str(exc))
    console.print(line, soft_wrap=True)
    hint = problem.hint_for(exc)
    if hint:
        console.print(Text(f"Hint: {hint}", style="dim"), soft_wrap=True)


def fail(message: str, *, hint: str | None = None, exit_code: int = FAILURE) -> typer.Exit:
    """Print an error that is not a ``LegatoError`` and return the ``Exit`` to raise."""
    report(RuntimeError(message), Problem(exit_code, hint))
    return typer.Exit(exit_code)


class LegatoGroup(TyperGroup):
    """The root command group: maps known errors to a message and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        """Invoke the subcommand; report user errors instead of raising them."""
        try:
            return super().invoke(ctx)
        except (errors.LegatoError, TimeoutError) as exc:
            problem = problem_for(exc)
            if problem is None:  # pragma: no cover - the last rows match every LegatoError
                raise
            report(exc, problem)
            raise typer.Exit(problem.exit_code) from None
