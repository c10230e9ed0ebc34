"""Run as pid 1 of a new pid namespace by ``test_pid_reuse.py``: a worker dies, and the
next one comes back with the same pid, as in a container whose worker is restarted.

Usage: ``unshare --pid --fork --mount-proc python -m tests.integration.pid_reuse_driver DIR
URL``: DIR for the ledger and the logs, URL the runs database (the test's own).
Starts a worker on ``crash_app`` that holds every run in step2, SIGKILLs it, makes the
kernel hand its pid to the next process (``/proc/sys/kernel/ns_last_pid``), starts the
next worker, and prints one JSON line: both pids, and seconds from the second worker's
start until every run has ended.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tests.integration.test_crash_recovery import (
    FINISH_TIMEOUT_S,
    TERMINAL,
    WORKFLOW,
    CrashEnv,
    effect_counts,
    wait_until,
)

import legato

RUNS = 20


def main(directory: Path, url: str) -> None:
    env = CrashEnv(directory, url)
    try:
        first = env.start_worker("first", hold="step2")
        with legato.Client(env.url) as client:
            for i in range(RUNS):
                client.start(WORKFLOW, {"id": f"r{i}", "fail": False}, run_id=f"r{i}")
        # Every run is in step2 (held there) once step1's completion is recorded: its
        # effect in the ledger alone is not enough, the record may not be committed yet
        # (then step1 rightly runs again after the kill, and the count below is off).
        wait_until(
            lambda: (
                env.runs.rows(
                    "SELECT count(*) FROM history WHERE kind = 'step_completed' AND name = 'step1'"
                )
                == [(RUNS,)]
            ),
            FINISH_TIMEOUT_S,
            "step1s recorded",
        )
        first.kill()
        # The next process this namespace creates gets the dead worker's pid.
        Path("/proc/sys/kernel/ns_last_pid").write_text(str(first.pid - 1))
        began = time.monotonic()
        second = env.start_worker("second")
        marks = ", ".join("?" * len(TERMINAL))
        wait_until(
            lambda: (
                env.runs.rows(f"SELECT count(*) FROM runs WHERE status IN ({marks})", TERMINAL)
                == [(RUNS,)]
            ),
            FINISH_TIMEOUT_S,
            "every run to end",
            second,
        )
        result = {
            "pids": [first.pid, second.pid],
            "recovered_s": time.monotonic() - began,
            "step1_runs": sum(
                n for (_, name), n in effect_counts(env.ledger).items() if name == "step1"
            ),
        }
        print(json.dumps(result), flush=True)
    finally:
        env.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
