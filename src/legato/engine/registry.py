"""Workflow and step definitions, as registered with ``@app.workflow`` and ``@app.step``."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from legato.bus.subscriptions import Subscription
from legato.engine.context import current_execution, current_step_key
from legato.errors import DefinitionError, UnknownWorkflow
from legato.model.events import Event
from legato.model.patterns import Pattern
from legato.model.retry import Retry

if TYPE_CHECKING:
    from legato.bus.expectations import Expectation

P = ParamSpec("P")
F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")

DEFAULT_STEP_RETRY = Retry()
DEFAULT_COMPENSATION_RETRY = Retry(max_attempts=5)


def _seconds(value: timedelta | None, what: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, timedelta):
        raise DefinitionError(f"{what} must be a datetime.timedelta, got {value!r}")
    if value <= timedelta(0):
        raise DefinitionError(f"{what} must be positive, got {value}")
    return value.total_seconds()


class _Arity:
    """Checks call arguments against a signature without paying for ``bind`` each time."""

    __slots__ = ("_max", "_min", "_signature", "_simple")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._signature = inspect.signature(fn)
        params = list(self._signature.parameters.values())
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        self._simple = all(p.kind in positional for p in params)
        self._min = sum(1 for p in params if p.default is inspect.Parameter.empty)
        self._max = len(params)

    def check(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._simple and not kwargs and self._min <= len(args) <= self._max:
            return
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise DefinitionError(
                f"{name} called with the wrong arguments: {exc} (signature: {name}"
                f"{self._signature})"
            ) from None


class Compensation:
    """The undo of a step: called with the step's arguments, then its result."""

    def __init__(
        self, fn: Callable[..., Any], step: Step[..., Any], retry: Retry, timeout: timedelta | None
    ) -> None:
        self.fn = fn
        self.name = f"{step.name}.compensate"
        self.retry = retry
        self.timeout_s = _seconds(timeout, f"timeout of compensation of {step.name!r}")
        self.is_async = inspect.iscoroutinefunction(fn)


class Step(Generic[P, R]):
    """A durable step: inside a workflow each call is recorded and never repeated once
    recorded; outside a workflow it is a plain function call (handy in unit tests)."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None,
        retry: Retry | None,
        timeout: timedelta | None,
    ) -> None:
        if not callable(fn):
            raise DefinitionError(f"@app.step decorates a function, got {fn!r}")
        if retry is not None and not isinstance(retry, Retry):
            raise DefinitionError(f"retry must be a legato.Retry, got {retry!r}")
        self.fn = fn
        self.name = name or fn.__qualname__
        self.retry = retry or DEFAULT_STEP_RETRY
        self.timeout_s = _seconds(timeout, f"timeout of step {self.name!r}")
        self.is_async = inspect.iscoroutinefunction(fn)
        self.compensation: Compensation | None = None
        self._arity = _Arity(fn)
        functools.update_wrapper(self, fn)

    @overload
    def compensate(self, fn: F, /) -> F: ...

    @overload
    def compensate(
        self, fn: None = None, /, *, retry: Retry | None = None, timeout: timedelta | None = None
    ) -> Callable[[F], F]: ...

    def compensate(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        retry: Retry | None = None,
        timeout: timedelta | None = None,
    ) -> Any:
        """Register the undo of this step; it gets the step's arguments, then its result.

        Use as ``@my_step.compensate`` or ``@my_step.compensate(retry=legato.Retry(...))``.
        """

        def register(undo: Callable[..., Any]) -> Callable[..., Any]:
            if self.compensation is not None:
                raise DefinitionError(f"step {self.name!r} already has a compensation")
            self.compensation = Compensation(
                undo, self, retry or DEFAULT_COMPENSATION_RETRY, timeout
            )
            return undo

        return register(fn) if fn is not None else register

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        execution = current_execution.get()
        if execution is None or current_step_key.get() is not None:
            return self.fn(*args, **kwargs)
        self._arity.check(f"step {self.name!r}", args, kwargs)
        return execution.call_step(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<legato step {self.name!r}>"


class Workflow(Generic[P, R]):
    """A workflow: an ``async def`` whose calls to steps are checkpointed.

    With ``trigger`` (``@app.workflow(on=...)``) each matching event starts a run, which
    gets the event (a ``legato.Event``) as its first argument.
    """

    def __init__(
        self,
        fn: Callable[P, Any],
        *,
        name: str | None,
        timeout: timedelta | None,
        trigger: Pattern | None = None,
        stuck_after: timedelta | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise DefinitionError(
                f"workflow {getattr(fn, '__qualname__', fn)!r} must be an async def: the "
                "engine suspends and resumes it at each step call"
            )
        self.fn = fn
        self.name = name or fn.__qualname__
        self.timeout_s = _seconds(timeout, f"timeout of workflow {self.name!r}")
        # No progress for this long raises a stuck_run alert (legato.bus.alerts).
        self.stuck_after_s = _seconds(stuck_after, f"stuck_after of workflow {self.name!r}")
        self.trigger = trigger
        # Started by an expectation's violation (app.expect(start=...)), with its event.
        self.started_by_expectation = False
        self._arity = _Arity(fn)
        functools.update_wrapper(self, fn)

    def call_arguments(self, args: list[Any]) -> list[Any]:
        """The arguments the function gets from the stored ones (JSON): the event of a
        triggered workflow (or of one an expectation starts) becomes a ``legato.Event``."""
        if (
            args
            and isinstance(args[0], dict)
            and (
                self.trigger is not None
                or (self.started_by_expectation and "specversion" in args[0])
            )
        ):
            return [Event.from_dict(args[0]), *args[1:]]
        return args

    def check_arguments(self, args: tuple[Any, ...]) -> None:
        """Raise ``DefinitionError`` if ``args`` do not fit the workflow's signature."""
        self._arity.check(f"workflow {self.name!r}", args, {})

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<legato workflow {self.name!r}>"


class Registry:
    """The workflows, steps and subscriptions one app serves, by name."""

    def __init__(self) -> None:
        self.workflows: dict[str, Workflow[..., Any]] = {}
        self.steps: dict[str, Step[..., Any]] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.expectations: dict[str, Expectation] = {}

    def add_expectation(self, expectation: Expectation) -> None:
        if expectation.name in self.expectations:
            raise DefinitionError(f"an expectation named {expectation.name!r} is already defined")
        self.add_subscription(expectation.subscription)
        self.expectations[expectation.name] = expectation

    def check_expectations(self) -> None:
        """Raise ``DefinitionError`` if an expectation starts a workflow not defined here."""
        for expectation in self.expectations.values():
            if expectation.start is None:
                continue
            workflow = self.workflows.get(expectation.start)
            if workflow is None:
                known = ", ".join(self.workflows) or "none"
                raise DefinitionError(
                    f"expectation {expectation.name!r} starts workflow {expectation.start!r}, "
                    f"which this app does not define (it has: {known})"
                )
            workflow.started_by_expectation = True

    def add_subscription(self, subscription: Subscription) -> None:
        if subscription.name in self.subscriptions:
            raise DefinitionError(
                f"a subscription named {subscription.name!r} is already registered: give "
                "@app.on(name=...) another name"
            )
        self.subscriptions[subscription.name] = subscription

    def add_workflow(self, workflow: Workflow[..., Any]) -> None:
        if workflow.name in self.workflows:
            raise DefinitionError(f"a workflow named {workflow.name!r} is already registered")
        self.workflows[workflow.name] = workflow

    def add_step(self, step: Step[..., Any]) -> None:
        if step.name in self.steps:
            raise DefinitionError(f"a step named {step.name!r} is already registered")
        self.steps[step.name] = step

    def workflow(self, name_or_workflow: str | Workflow[..., Any]) -> Workflow[..., Any]:
        """Look a workflow up by name (or check a definition belongs here)."""
        if isinstance(name_or_workflow, Workflow):
            name = name_or_workflow.name
        elif isinstance(name_or_workflow, str):
            name = name_or_workflow
        else:
            raise DefinitionError(f"start() takes a workflow or its name, got {name_or_workflow!r}")
        try:
            return self.workflows[name]
        except KeyError:
            raise UnknownWorkflow(name, list(self.workflows)) from None
