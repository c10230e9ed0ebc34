"""A full disk is ridden out by a running worker; a permission problem is named as one.

Real faults only: a tmpfs of our own filled by a file and then freed under a real
``legato worker``, and the CLI run as user nobody against files root keeps to itself.
All of it is about a SQLite file and the disk and directory holding it (``sqlite_only``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.fixtures.disks import tmpfs

import legato
from legato.errors import StorageError
from legato.model import EventKind, RunStatus

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]

REPO = Path(__file__).resolve().parents[2]
LEGATO = str(Path(sys.executable).parent / "legato")
NOBODY = 65534

RUNS = 4
STEPS = 20  # of 0.1 s each (outage_app): runs are mid-way when the disk fills


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of our own (the tests run as root, as CI does).

    Big enough that SQLite's WAL never reaches its first checkpoint (1000 pages) before
    the disk is filled: every commit after that must grow the WAL, so it fails.
    """
    with tmpfs(tmp_path / "disk", "4m") as mount:
        yield mount


def fill(disk: Path) -> Path:
    """Write a file until ``disk`` has no room left; delete it to give the room back."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)
    return filler


def wait_for(
    what: str, condition: Callable[[], bool], worker: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        if worker.poll() is not None or time.monotonic() > deadline:
            state = "exited" if worker.poll() is not None else "still running"
            pytest.fail(f"waited for {what}; the worker is {state}. Its log:\n{log.read_text()}")
        time.sleep(0.05)


def log_records(log: Path) -> list[str]:
    """The worker's log records, each with the traceback lines that follow it."""
    return re.split(r"\n(?=\d{4}-\d\d-\d\d )", log.read_text())


def error_lines(log: Path) -> list[str]:
    return [r.splitlines()[0] for r in log_records(log) if re.search(r" (ERROR|CRITICAL) ", r)]


def test_a_worker_rides_out_a_full_disk_and_finishes_its_runs_once_space_returns(
    small_disk: Path, tmp_path: Path
) -> None:
    # Given a worker executing runs, each a few steps in, on a database on a small disk
    path = small_disk / "runs.db"
    database = f"sqlite:///{path}"
    log = tmp_path / "worker.log"
    with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        worker = subprocess.Popen(
            [LEGATO, "worker", "tests.integration.outage_app:app", "--database", database],
            cwd=REPO,
            stderr=stderr,
        )
    try:
        with legato.Client(database) as client:
            wait_for("its workflows", lambda: "ticks" in client.list_workflows(), worker, log)
            run_ids = [client.start("ticks", STEPS, run_id=f"run-{i}").run_id for i in range(RUNS)]

            def steps_done(run_id: str) -> int:
                return sum(e.kind is EventKind.STEP_COMPLETED for e in client.history(run_id))

            wait_for("a step of each run", lambda: all(map(steps_done, run_ids)), worker, log)

            # When the disk fills up under it
            filler = fill(small_disk)
            wait_for("the outage in the log", lambda: len(error_lines(log)) > 0, worker, log)
            time.sleep(0.5)  # every run in flight has hit the full disk by now
            said = error_lines(log)
            time.sleep(3)  # fifteen polls' worth of a full disk

            # Then it stays up, has said so once rather than at every poll, and its runs wait
            assert worker.poll() is None, log.read_text()
            text = log.read_text()
            assert error_lines(log) == said, text
            assert len(said) <= RUNS + 1, text  # each run in flight stopped, and upkeep
            assert text.count("worker upkeep failed") == 1, text
            assert sum("Traceback" in r for r in log_records(log)) <= 1, text
            assert f"the disk holding {path} is full" in said[-1], text
            assert all(client.get_run(r).status is RunStatus.RUNNING for r in run_ids)
            assert not any(steps_done(r) == STEPS for r in run_ids)

            # When the space returns
            filler.unlink()

            # Then the same worker process finishes every run, each step's result kept
            def completed() -> bool:
                return all(client.get_run(r).status is RunStatus.COMPLETED for r in run_ids)

            wait_for("every run completed", completed, worker, log)
            assert [client.get_run(r).output for r in run_ids] == [STEPS] * RUNS
            assert worker.poll() is None
            assert "worker upkeep works again" in log.read_text()
    finally:
        if worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=20)


def test_a_full_disk_is_named_as_such_when_a_large_write_fails(small_disk: Path) -> None:
    # Given a client on a database whose disk then fills up
    path = small_disk / "runs.db"
    with legato.Client(f"sqlite:///{path}", max_payload_bytes=4 << 20) as client:
        client.start("wf", 1, run_id="small")
        filler = fill(small_disk)

        # When one write holds more than SQLite's page cache (2 MB), so SQLite writes
        # pages before the commit, and it is then SQLite that fails and rolls back
        with pytest.raises(StorageError) as failed:
            client.start("wf", "x" * (3 << 20), run_id="large")

        # Then the error names the full disk, and writes work again once there is room
        assert f"the disk holding {path} is full" in str(failed.value)
        filler.unlink()
        client.start("wf", 2, run_id="after")
        assert {r.run_id for r in client.list_runs()} == {"small", "after"}


# -- permissions -------------------------------------------------------------------------


def _cannot_run_as_nobody(python: str, env: dict[str, str], expected: str) -> str | None:
    """Why user nobody cannot import legato (from ``expected``) with ``python``; None if it can."""
    try:
        done = subprocess.run(
            [python, "-c", "import legato; print(legato.__file__)"],
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            env=env,
            cwd="/",
            capture_output=True,
            text=True,
        )
    except OSError as exc:
        return str(exc)
    if done.returncode != 0:
        return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "it exited 1"
    if done.stdout.strip() != expected:
        return f"it imports legato from {done.stdout.strip()}, not {expected}"
    return None


@contextlib.contextmanager
def interpreter_seen_by_nobody(place: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """This venv's interpreter, its packages and this legato, for user nobody to run.

    pyenv and uv keep the interpreter under /root (mode 700), and a checkout may sit in a
    directory only root may enter (CI clones into a mktemp one): read-only bind mounts of
    the interpreter, this venv's site-packages and legato's source under ``place``, and a
    venv beside them that points there, show nobody the same files. Nothing is copied.
    """
    env = dict(os.environ)
    if _cannot_run_as_nobody(sys.executable, env, legato.__file__) is None:
        yield sys.executable, env
        return
    site = Path(sysconfig.get_path("purelib"))
    source = Path(legato.__file__).resolve().parent.parent  # the directory holding legato/
    mounts = {"python": Path(sys.base_prefix), "site": site, "src": source}
    mounted: list[Path] = []
    venv = place / "venv"
    try:
        for name, what in mounts.items():
            point = place / name
            point.mkdir()
            mounted.append(point)
            subprocess.run(["mount", "--bind", "-o", "ro", str(what), str(point)], check=True)
        base = place / "python"
        real = Path(os.path.realpath(sys.executable)).relative_to(sys.base_prefix)
        (venv / site.relative_to(sys.prefix)).parent.mkdir(parents=True)
        (venv / site.relative_to(sys.prefix)).symlink_to(place / "site")
        (venv / "bin").mkdir()
        (venv / "bin" / "python").symlink_to(base / real)
        (venv / "pyvenv.cfg").write_text(
            f"home = {base / real.parent}\ninclude-system-site-packages = false\n"
        )
        env["LD_LIBRARY_PATH"] = str(base / "lib")  # its RUNPATH names the path under /root
        env["PYTHONPATH"] = str(place / "src")  # ahead of the editable install's finder
        python = str(venv / "bin" / "python")
        expected = str(place / "src" / Path(legato.__file__).resolve().relative_to(source))
        still = _cannot_run_as_nobody(python, env, expected)
        if still is not None:
            pytest.fail(
                f"user nobody cannot run {sys.executable} and import this legato, even "
                f"through bind mounts of {', '.join(map(str, mounts.values()))} ({still})"
            )
        yield python, env
    finally:
        # Unmounted before anything is removed, and rmdir, not rmtree, on a mount point:
        # a removal that went through a mount would delete what it shows.
        for point in reversed(mounted):
            subprocess.run(["umount", str(point)], check=True)
            point.rmdir()
        shutil.rmtree(venv, ignore_errors=True)  # symlinks and one file of ours


@pytest.fixture(scope="module")
def as_nobody() -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """Run the ``legato`` CLI as user nobody (root's permissions override every file mode)."""
    place = Path(tempfile.mkdtemp(prefix="legato-nobody-"))
    place.chmod(0o755)  # mkdtemp makes it 700
    try:
        with interpreter_seen_by_nobody(place) as (python, env):

            def run(*args: str) -> subprocess.CompletedProcess[str]:
                script = (
                    "import sys; from legato.cli.main import main; sys.argv[0] = 'legato'; main()"
                )
                return subprocess.run(
                    [python, "-c", script, *args],
                    user=NOBODY,
                    group=NOBODY,
                    extra_groups=[],
                    env=env,
                    cwd="/",
                    capture_output=True,
                    text=True,
                )

            yield run
    finally:
        place.rmdir()  # empty by now; never rmtree a directory that held a mount


@pytest.fixture
def root_only() -> Iterator[Path]:
    """A directory of root's that others may enter but not write (``tmp_path`` is in a 700 one)."""
    place = Path(tempfile.mkdtemp(prefix="legato-perm-"))
    place.chmod(0o755)
    try:
        yield place
    finally:
        shutil.rmtree(place)


def make_database(path: Path) -> None:
    with legato.Client(f"sqlite:///{path}") as client:
        client.start("wf", 1, run_id="r1")


def snapshot(directory: Path) -> dict[str, tuple[int, int, str]]:
    """Each file's mode, modification time and content digest."""
    return {
        p.name: (p.stat().st_mode, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(directory.iterdir())
    }


def assert_named_a_permission_problem(done: subprocess.CompletedProcess[str], refused: str) -> None:
    assert done.returncode == 1, done
    error = done.stderr.strip()
    assert "\n" not in error and error.startswith("Error: permission denied"), error
    assert f"user nobody (uid {NOBODY}) {refused}" in error, error
    for misnomer in ("corrupt", "not a SQLite", "Legato database", "new file", "backup"):
        assert misnomer not in error, error


def test_a_database_file_the_user_may_not_read_is_named_a_permission_problem(
    as_nobody: Callable[..., subprocess.CompletedProcess[str]], root_only: Path
) -> None:
    # Given a database that only root may read or write
    path = root_only / "runs.db"
    make_database(path)
    path.chmod(0o600)
    before = snapshot(root_only)

    for command in (["runs", "list"], ["start", "wf", "--input", "2"]):
        # When user nobody reads it, or writes it
        done = as_nobody(*command, "--database", f"sqlite:///{path}")

        # Then the one line says whose permission is missing, and nothing changed
        assert_named_a_permission_problem(done, f"may not read or write {path}")
        assert "nothing was changed" in done.stderr
        assert snapshot(root_only) == before


def test_a_directory_the_user_may_not_write_is_named_a_permission_problem_and_reads_work(
    as_nobody: Callable[..., subprocess.CompletedProcess[str]], root_only: Path
) -> None:
    # Given a database file anyone may write, in a directory only root may write: SQLite
    # cannot make the -wal and -shm files every writer needs beside it
    path = root_only / "runs.db"
    make_database(path)
    path.chmod(0o666)
    before = snapshot(root_only)
    database = f"sqlite:///{path}"

    # When user nobody starts a run there
    done = as_nobody("start", "wf", "--input", "2", "--run-id", "r2", "--database", database)

    # Then the one line names the directory and says reads still work, and they do
    assert_named_a_permission_problem(
        done, f"may not create files in the directory {root_only}, where SQLite keeps"
    )
    assert "commands that only read still work" in done.stderr
    listed = as_nobody("runs", "list", "--database", database)
    assert listed.returncode == 0, listed.stderr
    assert "r1" in listed.stdout and "r2" not in listed.stdout
    assert snapshot(root_only) == before


def test_a_new_database_in_a_directory_the_user_may_not_write_is_named_a_permission_problem(
    as_nobody: Callable[..., subprocess.CompletedProcess[str]], root_only: Path
) -> None:
    path = root_only / "new.db"

    done = as_nobody("start", "wf", "--input", "2", "--database", f"sqlite:///{path}")

    assert_named_a_permission_problem(done, f"may not create new.db in the directory {root_only}")
    assert list(root_only.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [
        ["runs", "list"],
        ["start", "wf", "--input", "2"],
    ],
    ids=["read", "write"],
)
def test_a_directory_the_user_may_not_enter_is_named_a_permission_problem(
    as_nobody: Callable[..., subprocess.CompletedProcess[str]], root_only: Path, command: list[str]
) -> None:
    private = root_only / "private"
    private.mkdir(mode=0o700)
    path = private / "runs.db"
    make_database(path)
    before = snapshot(private)

    done = as_nobody(*command, "--database", f"sqlite:///{path}")

    assert_named_a_permission_problem(done, f"may not enter the directory {private}")
    assert snapshot(private) == before
