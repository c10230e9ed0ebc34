"""``legato.Retry``: the backoff formula, checked for every input hypothesis can think of."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

import legato

# The cap is never below the first wait (Retry refuses that: see the test below).
intervals = st.tuples(
    st.timedeltas(timedelta(0), timedelta(hours=1)),
    st.timedeltas(timedelta(0), timedelta(days=1)),
).map(sorted)
policies = st.builds(
    lambda attempts, interval, backoff, jitter: legato.Retry(
        max_attempts=attempts,
        initial_interval=interval[0],
        backoff=backoff,
        max_interval=interval[1],
        jitter=jitter,
    ),
    st.integers(1, 20),
    intervals,
    st.floats(1.0, 10.0),
    st.booleans(),
)


@given(policies, st.integers(1, 60), st.floats(0.0, 1.0, exclude_max=True))
def test_delay_is_capped_and_jitter_keeps_at_least_half(
    policy: legato.Retry, failed: int, rand: float
) -> None:
    full = min(
        policy.initial_interval.total_seconds() * policy.backoff ** (failed - 1),
        policy.max_interval.total_seconds(),
    )
    delay = policy.delay(failed, rand).total_seconds()
    if policy.jitter:
        assert full / 2 - 1e-6 <= delay <= full + 1e-6
    else:
        assert abs(delay - full) <= 1e-6


@given(policies, st.integers(1, 30))
def test_delay_never_shrinks_from_one_retry_to_the_next(policy: legato.Retry, failed: int) -> None:
    no_jitter = legato.Retry(
        max_attempts=policy.max_attempts,
        initial_interval=policy.initial_interval,
        backoff=policy.backoff,
        max_interval=policy.max_interval,
        jitter=False,
    )
    assert no_jitter.delay(failed, 0.0) <= no_jitter.delay(failed + 1, 0.0)


def test_non_retryable_covers_subclasses() -> None:
    policy = legato.Retry(non_retryable=(LookupError,))
    assert not policy.is_retryable(KeyError("k"))
    assert policy.is_retryable(ValueError("v"))


def test_defaults_match_the_documented_policy() -> None:
    policy = legato.Retry()
    assert (policy.max_attempts, policy.backoff, policy.jitter) == (3, 2.0, True)
    assert (policy.initial_interval, policy.max_interval) == (
        timedelta(seconds=1),
        timedelta(minutes=1),
    )


def test_max_interval_below_initial_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="max_interval"):
        legato.Retry(initial_interval=timedelta(seconds=10), max_interval=timedelta(seconds=5))
    legato.Retry(initial_interval=timedelta(seconds=5), max_interval=timedelta(seconds=5))
