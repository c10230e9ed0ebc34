"""A wrong password is named as such, on a real server that asks for one.

The test server trusts 127.0.0.1, so this test starts a throwaway PostgreSQL cluster of
its own (``initdb --auth=scram-sha-256``, run as the ``postgres`` user: the tests run as
root on the CI machine) on a free port, and stops it afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from legato.errors import StorageError
from legato.storage import open_store
from tests.acceptance.cli_driver import Cli

pytestmark = pytest.mark.postgres_only


def _bin(name: str) -> str:
    versions = sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: int(v.split(".")[0]))
    return f"/usr/lib/postgresql/{versions[-1]}/bin/{name}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def password_server() -> Iterator[int]:
    """A cluster whose only user, ``legato_pw``, has the password ``right-password``."""
    if os.geteuid() != 0 or not os.path.isdir("/usr/lib/postgresql"):
        pytest.fail(
            "this test starts a PostgreSQL cluster as the postgres user: run as root "
            "on a machine with PostgreSQL installed (the CI machine is one)"
        )
    postgres = pwd.getpwnam("postgres")
    # Not pytest's tmp_path: its parent is root's alone, and postgres must reach this one.
    tmp_path = Path(tempfile.mkdtemp(prefix="legato-password-test-"))
    data, sockets = tmp_path / "data", tmp_path / "sockets"
    for directory in (tmp_path, data, sockets):
        directory.mkdir(exist_ok=True)
        os.chown(directory, postgres.pw_uid, postgres.pw_gid)
    pwfile = tmp_path / "pwfile"
    pwfile.write_text("right-password\n")
    os.chown(pwfile, postgres.pw_uid, postgres.pw_gid)
    port = _free_port()

    def as_postgres(*args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=120
        )

    as_postgres(
        _bin("initdb"),
        "-D",
        str(data),
        "-U",
        "legato_pw",
        "--auth=scram-sha-256",
        f"--pwfile={pwfile}",
    )
    as_postgres(
        _bin("pg_ctl"),
        "-D",
        str(data),
        "-w",
        "-l",
        str(tmp_path / "log"),
        "-o",
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1",
        "start",
    )
    try:
        yield port
    finally:
        as_postgres(_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(tmp_path, ignore_errors=True)


async def test_a_wrong_password_is_named_and_never_shown(password_server: int) -> None:
    url = f"postgresql://legato_pw:wrong-password@127.0.0.1:{password_server}/postgres"
    with pytest.raises(StorageError) as caught:
        await open_store(url).open()
    message = str(caught.value)
    assert f"PostgreSQL at 127.0.0.1:{password_server}/postgres refused the password" in message
    assert "wrong-password" not in message
    # The CLI says the same in one line, and so does a right password get further
    result = Cli(url).run("runs", "list")
    assert result.returncode == 1 and "refused the password" in result.stderr
    assert "wrong-password" not in result.stdout + result.stderr
    right = url.replace("wrong-password", "right-password")
    result = Cli(right).run("runs", "list")
    assert "legato db migrate" in result.stderr  # connected: only the schema is missing
