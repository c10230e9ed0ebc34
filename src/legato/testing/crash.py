"""Crash a real worker process at a named point, then restart it — for recovery tests.

    with WorkerProcess("myapp:app", "sqlite:///t.db", crash_at="after_step:charge") as w:
        client.start("purchase", {...})
        w.wait_for_crash()          # SIGKILLed right after charge's record committed
        w.restart()                 # a plain worker: recovers and finishes the run

Points: ``after_step:NAME`` (a step's completion is durable), ``after_compensation:NAME``,
``before_timer`` (a sleep's timer is durable, not yet fired), ``after_signal:NAME`` (a
signal's consumption is durable), ``after_start`` (a run's first record is durable),
``after_delivery:SUBSCRIPTION`` (a delivery to that subscription is recorded as done),
``before_violation:EXPECTATION`` (a deadline passed and its violation is about to be
written) and ``after_violation:EXPECTATION`` (the violation, its event and its run are
durable).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from legato.model import EventKind
from legato.observability.hooks import Hooks
from legato.storage.base import Append, UpdateDelivery, UpdateExpectation, Write

_POINTS = {
    "after_step": EventKind.STEP_COMPLETED.value,
    "after_compensation": EventKind.COMPENSATION_COMPLETED.value,
    "before_timer": EventKind.TIMER_STARTED.value,
    "after_signal": EventKind.SIGNAL_RECEIVED.value,
    "after_start": None,
    "after_delivery": "delivery",
    "before_violation": "violation",
    "after_violation": "violation",
}


class CrashAt(Hooks):
    """SIGKILL this process right after a record matching ``point`` commits."""

    def __init__(self, point: str) -> None:
        kind, _, name = point.partition(":")
        if kind not in _POINTS:
            raise ValueError(f"unknown crash point {point!r}; known: {sorted(_POINTS)}")
        self.kind = _POINTS[kind]
        self.before = kind.startswith("before_")
        self.name = name or None

    def before_commit(self, writes: Sequence[Write]) -> None:
        """Die, the hard way, if this batch is about to write the point."""
        if self.before and self._violates(writes):
            os.kill(os.getpid(), signal.SIGKILL)

    def _violates(self, writes: Sequence[Write]) -> bool:
        return any(
            isinstance(op, UpdateExpectation)
            and op.status == "violated"
            and (self.name is None or op.expectation == self.name)
            for op in writes
        )

    def after_commit(self, writes: Sequence[Write]) -> None:
        """Die, the hard way, if this batch holds the point."""
        if self.kind == "violation":
            if not self.before and self._violates(writes):
                os.kill(os.getpid(), signal.SIGKILL)
            return
        for op in writes:
            if self.kind == "delivery":
                if (
                    isinstance(op, UpdateDelivery)
                    and op.status == "done"
                    and (self.name is None or op.subscription == self.name)
                ):
                    os.kill(os.getpid(), signal.SIGKILL)
                continue
            if (
                isinstance(op, Append)
                and (self.kind is None or op.kind == self.kind)
                and (self.name is None or op.name == self.name)
            ):
                os.kill(os.getpid(), signal.SIGKILL)


class WorkerProcess:
    """A ``legato worker`` in a subprocess, optionally set to crash at a point."""

    def __init__(
        self,
        target: str,
        database: str,
        *,
        crash_at: str | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        if crash_at is not None:
            CrashAt(crash_at)  # a clear error now, not a silent worker later
        self.target = target
        self.database = database
        self.crash_at = crash_at
        self.cwd = cwd
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: a chatty worker must never block on a full pipe.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  # lives as long as this object

    @property
    def log(self) -> str:
        """Everything the worker processes wrote to stderr so far."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def start(self) -> WorkerProcess:
        """Start the worker process."""
        env = {**os.environ, **(self.env or {})}
        path = [self.cwd or os.getcwd(), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "legato.testing.crash",
                self.target,
                self.database,
                self.crash_at or "",
            ],
            cwd=self.cwd,
            env=env,
            stderr=self._log,
        )
        return self

    def wait_ready(self, workflow: str, timeout: float = 30.0) -> None:
        """Wait until the worker has registered ``workflow`` in the database."""
        from legato.client import Client

        deadline = time.monotonic() + timeout
        with Client(self.database) as client:
            while workflow not in client.list_workflows():
                if self.process is None or self.process.poll() is not None:
                    raise AssertionError(f"worker exited before it was ready:\n{self.log}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"worker not ready after {timeout}s:\n{self.log}")
                time.sleep(0.02)

    def wait_for_crash(self, timeout: float = 60.0) -> int:
        """Wait for the planned crash; return the exit code (-9 for SIGKILL)."""
        assert self.process is not None, "start() the worker first"
        code = self.process.wait(timeout)
        if code != -signal.SIGKILL:
            raise AssertionError(
                f"worker exited with {code}, not by the planned crash:\n{self.log}"
            )
        return code

    def restart(self, crash_at: str | None = None) -> WorkerProcess:
        """Stop this process if it still runs, and start a new one (crashing at ``crash_at``)."""
        self.stop()
        self.crash_at = crash_at
        return self.start()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (graceful), then SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._log.close()


def main(argv: list[str]) -> None:
    """``python -m legato.testing.crash MODULE:APP DATABASE [POINT]``."""
    import asyncio

    from legato.cli.main import load_app

    app = load_app(argv[0])
    app.use_database(argv[1])
    if len(argv) > 2 and argv[2]:
        app.hooks.append(CrashAt(argv[2]))
    asyncio.run(app.run_worker())


if __name__ == "__main__":
    main(sys.argv[1:])
