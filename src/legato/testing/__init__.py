"""Public test kit: a clock you move by hand, and helpers for testing workflows."""

from legato.testing.clock import FakeClock

__all__ = ["FakeClock"]
