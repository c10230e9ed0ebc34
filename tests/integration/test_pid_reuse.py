"""A worker restarted under the pid of the one that died recovers its runs at once.

In a container the restarted worker often gets the dead one's pid back. The pid is
alive, so only the process's start time tells that it is not the worker that registered
under it; without that check recovery waits for the lease (15 s) to run out. The test
makes the pid come back for real, in a pid namespace of its own (``unshare``, as root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.fixtures.db import fresh_database

from legato.engine.liveness import is_dead_here, process_started_at
from legato.storage.base import WorkerInfo

REPO_ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 15.0  # the default lease: a recovery that waited for it would take this long


def _worker(pid: int, registered_at: float) -> WorkerInfo:
    at = datetime.fromtimestamp(registered_at, UTC)
    return WorkerInfo("w", "host", pid, at, at)


def test_a_process_knows_when_it_started() -> None:
    before = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        started = process_started_at(child.pid)
        assert started is not None
        assert before - 0.1 <= started <= time.time() + 0.1
    finally:
        child.kill()
        child.wait()


def test_liveness_by_pid_and_start_time() -> None:
    me = process_started_at(os.getpid())
    assert me is not None
    # A worker that registered after this process started may be this process: alive.
    assert not is_dead_here(_worker(os.getpid(), me + 1.0))
    # One that registered before this process existed had this pid before us: dead.
    assert is_dead_here(_worker(os.getpid(), me - 60.0))
    # A pid with no process: dead.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert is_dead_here(_worker(gone.pid, me))


@pytest.mark.slow
def test_worker_restarted_with_the_same_pid_recovers_without_waiting_for_the_lease(
    tmp_path: Path,
) -> None:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.fail(
            "this test needs root and util-linux's unshare, to give a restarted worker "
            "the dead one's pid in a pid namespace of its own",
            pytrace=False,
        )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [
            unshare,
            "--pid",
            "--fork",
            "--mount-proc",
            sys.executable,
            "-m",
            "tests.integration.pid_reuse_driver",
            str(tmp_path),
            fresh_database(tmp_path, "runs.db"),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"driver failed:\n{done.stdout}\n{done.stderr}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    first, second = result["pids"]
    assert first == second, f"the kernel did not reuse the pid: {result}"
    assert result["recovered_s"] < LEASE_S / 3, result
    assert result["step1_runs"] == 20, result  # recorded before the kill: never ran again
