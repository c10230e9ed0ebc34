"""Storage faults are named and survived: an outage is logged once, a lost file stops.

Real processes and files: the worker's database is deleted or replaced under it, and a
store that fails for a while (as a full disk or a held lock would) is ridden out. The
faults of files (deleted, replaced, read-only media, a full tmpfs) are ``sqlite_only``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from tests.fixtures.disks import tmpfs

import legato
from legato.errors import StorageError
from legato.storage.memory import MemoryStore

REPO = Path(__file__).resolve().parents[2]
LEGATO = str(Path(sys.executable).parent / "legato")


def start_worker(database: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [LEGATO, "worker", "tests.integration.stuck_app:app", "--database", database],
            cwd=REPO,
            stderr=stderr,
        )


def wait_registered(database: str, worker: subprocess.Popen[bytes]) -> None:
    with legato.Client(database) as client:
        deadline = time.monotonic() + 30
        while "hang" not in client.list_workflows():
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_worker_stops_when_its_database_file_is_deleted_or_replaced(
    tmp_path: Path, how: str
) -> None:
    path = tmp_path / "runs.db"
    database = f"sqlite:///{path}"
    log = tmp_path / "worker.log"
    worker = start_worker(database, log)
    try:
        wait_registered(database, worker)
        if how == "deleted":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        else:
            other = tmp_path / "other.db"
            shutil.copy(path, other)
            other.replace(path)

        code = worker.wait(timeout=20)  # noticed at its next poll, not silently ignored

        text = log.read_text()
        assert code == 1, text
        assert f"the database file {path} was {how}" in text
        assert "Traceback" not in text
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


class FlakyStore(MemoryStore):
    """A real in-memory store whose upkeep reads fail while ``down`` is set."""

    down = False

    async def claim_runs(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.down:
            raise StorageError("database or disk is full")
        return await super().claim_runs(*args, **kwargs)


async def test_an_upkeep_outage_is_logged_once_and_upkeep_resumes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyStore()
    app = legato.App("t", store, poll_interval=timedelta(milliseconds=10))

    @app.workflow(name="wf")
    async def wf() -> str:
        return "done"

    caplog.set_level(logging.INFO, logger="legato")
    async with app:
        store.down = True
        await asyncio.sleep(0.5)  # ~50 polls' worth of failures
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert "database or disk is full" in errors[0].getMessage()
        store.down = False
        # A run started by another client is claimed once upkeep works again.
        async with legato.AsyncClient(store) as client:
            handle = await client.start("wf", run_id="later")
            assert await handle.result(timeout=10) == "done"
        assert any("works again" in r.getMessage() for r in caplog.records)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 512 KiB tmpfs of our own (the tests run as root, as CI does)."""
    with tmpfs(tmp_path / "disk", "512k") as mount:
        yield mount


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LEGATO, *args], capture_output=True, text=True, cwd=REPO)


def make_database(path: Path) -> None:
    async def main() -> None:
        app = legato.App("faults", f"sqlite:///{path}")

        @app.workflow(name="wf")
        async def wf(x: int) -> int:
            return x

        async with app:
            await (await app.start(wf, 1, run_id="r1")).result(timeout=10)

    asyncio.run(main())


@pytest.mark.sqlite_only
def test_read_only_media_serve_every_read_and_refuse_writes_clearly(small_disk: Path) -> None:
    path = small_disk / "runs.db"
    make_database(path)
    database = f"sqlite:///{path}"
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)

    for args in (
        ["runs", "list"],
        ["runs", "show", "r1"],
        ["runs", "history", "r1"],
        ["tasks", "list"],
        ["workflows", "list"],
        ["workers", "list"],
    ):
        done = cli(*args, "--database", database)
        assert done.returncode == 0, (args, done.stderr)
    assert "r1" in cli("runs", "list", "--database", database).stdout

    done = cli("start", "wf", "--input", "2", "--database", database)
    assert done.returncode == 1
    assert f"cannot write {path}" in done.stderr
    assert "read-only" in done.stderr
    assert "new file" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.sqlite_only
def test_a_full_disk_is_named_and_writes_work_again_once_space_returns(
    small_disk: Path,
) -> None:
    path = small_disk / "runs.db"
    make_database(path)
    database = f"sqlite:///{path}"
    filler = small_disk / "filler"
    with filler.open("wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:  # until the disk is full
            f.write(b"\0" * 4096)

    done = cli("start", "wf", "--input", "2", "--run-id", "r2", "--database", database)
    assert done.returncode == 1
    assert f"the disk holding {path} is full" in done.stderr, done.stderr
    assert "new file" not in done.stderr and "Traceback" not in done.stderr
    assert "r2" not in cli("runs", "list", "--database", database).stdout

    filler.unlink()
    done = cli("start", "wf", "--input", "2", "--run-id", "r2", "--database", database)
    assert done.returncode == 0, done.stderr
    assert "r2" in cli("runs", "list", "--database", database).stdout
