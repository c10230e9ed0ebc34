"""Fixtures for the HTTP API tests: a real ``legato server`` process on a free port of
127.0.0.1, real ``legato worker`` processes beside it, tokens made with the real CLI.

Each module shares one server (``server``, module-scoped) on a database of its own from
``fresh_database``: a SQLite file, or a fresh PostgreSQL schema in the PostgreSQL pass.
Tests of one module tell their runs apart by unique run ids (``unique``).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from tests.fixtures.db import fresh_database

REPO_ROOT = Path(__file__).resolve().parents[2]
LEGATO = Path(sys.executable).with_name("legato")
API_APP = "tests.api.api_app:app"
EXAMPLE_APP = "examples.course_purchase.app:app"
WAITING_APP = "tests.acceptance.waiting_app:app"
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance"}
TERMINAL = {"completed", "failed", "compensated", "compensation_failed", "cancelled", "blocked"}

T = TypeVar("T")


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick for port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_env(database: str) -> dict[str, str]:
    env = dict(os.environ)
    env["LEGATO_DATABASE_URL"] = database
    env["COLUMNS"] = "200"
    env.pop("FORCE_COLOR", None)
    return env


def legato(database: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``legato *args`` on ``database`` (never raises on a non-zero exit code)."""
    return subprocess.run(
        [str(LEGATO), *args],
        cwd=REPO_ROOT,
        env=cli_env(database),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful stop), then SIGKILL if it does not exit in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def eventually(
    probe: Callable[[], T | None], what: str, timeout: float = 20, every: float = 0.05
) -> T:
    """``probe()``'s first truthy answer, polling until ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def assert_problem(
    response: httpx.Response, status: int, kind: str | None = None
) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem of ``status`` (and ``urn:legato:problem:kind``)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_MEMBERS, body
    assert body["status"] == status
    assert body["type"].startswith("urn:legato:problem:"), body
    if kind is not None:
        assert body["type"] == f"urn:legato:problem:{kind}", body
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["instance"] == response.request.url.path
    return body


@dataclass
class Server:
    """One ``legato server`` process on its own database, and the workers beside it."""

    database: str
    directory: Path
    options: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _secrets: dict[str, str] = field(default_factory=dict)
    _clients: list[httpx.Client] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / f"server-{self.port}.log"

    def legato(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``legato *args`` on this server's database."""
        return legato(self.database, *args)

    def start(self) -> Server:
        """Start ``legato server`` and wait until ``/healthz`` answers."""
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(LEGATO),
                    "server",
                    "--database",
                    self.database,
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                    *self.options,
                ],
                cwd=REPO_ROOT,
                env=cli_env(self.database),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = self.process

        def healthy() -> bool:
            assert process.poll() is None, f"server exited:\n{self.log.read_text()}"
            try:
                return httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        eventually(healthy, f"legato server on port {self.port}", every=0.05)
        return self

    def server_errors(self) -> list[str]:
        """The 5xx answers ``/metrics`` counted (lines of ``legato_http_requests_total``)."""
        counted = httpx.get(f"{self.base_url}/metrics", timeout=5).text.splitlines()
        return [
            line
            for line in counted
            if line.startswith("legato_http_requests_total") and 'status="5' in line
        ]

    def sibling(self, *options: str) -> Server:
        """Another server (not started) on this one's database, with ``options``: the
        same database, so the same tokens."""
        other = Server(self.database, self.directory, options)
        other._secrets = self._secrets
        return other

    def stop(self, *, server_errors_expected: bool = False) -> None:
        """Stop the workers, then the server; close every client handed out. The server
        must not have logged a traceback, nor (unless expected) answered a 5xx."""
        running = self.process is not None and self.process.poll() is None
        errors = self.server_errors() if running and not server_errors_expected else []
        for client in self._clients:
            client.close()
        for worker in self.workers:
            stop_process(worker)
        if self.process is not None:
            stop_process(self.process)
        assert errors == [], errors
        assert "Traceback" not in self.log.read_text(), self.log.read_text()

    # -- tokens ----------------------------------------------------------------------------

    def create_token(self, name: str, scope: str) -> str:
        """``legato tokens create NAME --scope SCOPE --json``: the secret."""
        made = self.legato("tokens", "create", name, "--scope", scope, "--json")
        assert made.returncode == 0, made.stderr
        created = orjson.loads(made.stdout)
        assert created["name"] == name and created["scope"] == scope, created
        secret: str = created["secret"]
        assert secret.startswith("lgt_")
        return secret

    def token(self, scope: str) -> str:
        """The secret of this server's token of ``scope`` (made once, on first use)."""
        if scope not in self._secrets:
            self._secrets[scope] = self.create_token(f"api-{scope}", scope)
        return self._secrets[scope]

    def client(self, secret: str | None = None) -> httpx.Client:
        """An HTTP client of this server, sending ``secret`` as its bearer token."""
        headers = {} if secret is None else {"Authorization": f"Bearer {secret}"}
        client = httpx.Client(base_url=self.base_url, headers=headers, timeout=15)
        self._clients.append(client)
        return client

    def as_scope(self, scope: str) -> httpx.Client:
        """A client with this server's token of ``scope``."""
        return self.client(self.token(scope))

    # -- workers ---------------------------------------------------------------------------

    def start_worker(self, target: str = API_APP) -> subprocess.Popen[bytes]:
        """Start ``legato worker TARGET`` on this database; wait until ``/api/workers``
        lists it (it has registered its workflows and serves them)."""
        log_path = self.directory / f"worker-{len(self.workers) + 1}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(LEGATO), "worker", target, "--database", self.database],
                cwd=REPO_ROOT,
                env=cli_env(self.database),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(process)
        reader = self.as_scope("read")

        def listed() -> bool:
            assert process.poll() is None, f"worker died:\n{log_path.read_text()}"
            answer = reader.get("/api/workers")
            assert answer.status_code == 200, answer.text
            return any(w["pid"] == process.pid and w["workflows"] for w in answer.json())

        eventually(listed, f"worker {target}")
        return process

    # -- runs ------------------------------------------------------------------------------

    def wait_for_run(
        self, run_id: str, statuses: set[str] = TERMINAL, timeout: float = 20
    ) -> dict[str, Any]:
        """Poll ``GET /api/runs/{run_id}`` until the run is in one of ``statuses``."""
        reader = self.as_scope("read")

        def arrived() -> dict[str, Any] | None:
            shown = reader.get(f"/api/runs/{run_id}")
            assert shown.status_code == 200, shown.text
            body: dict[str, Any] = shown.json()
            return body if body["status"] in statuses else None

        return eventually(arrived, f"run {run_id} to be {sorted(statuses)}", timeout=timeout)


def new_server(
    factory: pytest.TempPathFactory, name: str, *options: str
) -> tuple[Server, Callable[[], None]]:
    """A started server on a fresh database (created by making its first token)."""
    directory = factory.mktemp(name)
    server = Server(fresh_database(directory), directory, options)
    server.token("admin")  # the CLI creates a SQLite database the server then opens
    return server.start(), server.stop


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with auth on, on a fresh database, shared by the module's tests."""
    started, stop = new_server(tmp_path_factory, "api")
    try:
        yield started
    finally:
        stop()


@pytest.fixture(scope="module")
def reader(server: Server) -> httpx.Client:
    return server.as_scope("read")


@pytest.fixture(scope="module")
def operator(server: Server) -> httpx.Client:
    return server.as_scope("operate")


@pytest.fixture(scope="module")
def admin(server: Server) -> httpx.Client:
    return server.as_scope("admin")


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    """A prefix no other test's ids share: the test's name and a random part."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name.removeprefix("test_"))[:30]
    return f"{name}-{uuid.uuid4().hex[:8]}"
