"""Public test kit: a clock you move by hand, and helpers for testing workflows."""

from legato.testing.bus import received
from legato.testing.clock import FakeClock
from legato.testing.crash import CrashAt, WorkerProcess
from legato.testing.faults import Faults, InjectedFault

__all__ = ["CrashAt", "FakeClock", "Faults", "InjectedFault", "WorkerProcess", "received"]
