"""Retry policy: how often and how patiently a step is tried again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True)
class Retry:
    """Exponential backoff with jitter.

    The n-th retry waits ``initial_interval * backoff**(n-1)``, capped at
    ``max_interval``; with ``jitter`` the wait is drawn uniformly from half of that to all
    of it, so retries from many runs spread out. Exceptions of a ``non_retryable`` type
    fail the step at once.

    >>> Retry(max_attempts=5, initial_interval=timedelta(milliseconds=200))  # doctest: +ELLIPSIS
    Retry(max_attempts=5, ...)
    """

    max_attempts: int = 3
    initial_interval: timedelta = timedelta(seconds=1)
    backoff: float = 2.0
    max_interval: timedelta = timedelta(minutes=1)
    jitter: bool = True
    non_retryable: tuple[type[BaseException], ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"Retry.max_attempts must be an int >= 1, got {self.max_attempts!r}")
        for name in ("initial_interval", "max_interval"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise ValueError(f"Retry.{name} must be a non-negative timedelta, got {value!r}")
        if self.max_interval < self.initial_interval:
            raise ValueError(
                f"Retry.max_interval ({self.max_interval}) is shorter than initial_interval "
                f"({self.initial_interval}): the cap would shorten even the first wait; raise "
                "max_interval or lower initial_interval"
            )
        if self.backoff < 1.0:
            raise ValueError(f"Retry.backoff must be >= 1.0, got {self.backoff!r}")
        if not isinstance(self.non_retryable, tuple) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in self.non_retryable
        ):
            raise ValueError("Retry.non_retryable must be a tuple of exception types")

    def delay(self, failed_attempts: int, rand: float) -> timedelta:
        """How long to wait after ``failed_attempts`` failures; ``rand`` is in [0, 1)."""
        base = self.initial_interval.total_seconds() * self.backoff ** (failed_attempts - 1)
        base = min(base, self.max_interval.total_seconds())
        if self.jitter:
            base *= 0.5 + 0.5 * rand
        return timedelta(seconds=base)

    def is_retryable(self, exc: BaseException) -> bool:
        """False when ``exc`` is of a type listed in ``non_retryable``."""
        return not isinstance(exc, self.non_retryable)


NO_RETRY = Retry(max_attempts=1)
