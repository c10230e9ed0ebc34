"""Who may call the API: bearer tokens made with ``legato tokens create`` and their scopes
(read, operate, admin), revocation, ``--read-only`` and ``--no-auth`` (loopback only), on
real servers."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import LEGATO, REPO_ROOT, Server, assert_problem, cli_env, free_port

READS = [
    "/api/runs",
    "/api/runs/r-auth",
    "/api/runs/r-auth/history",
    "/api/tasks",
    "/api/events",
    "/api/flows/some-flow",
    "/api/deadletters",
    "/api/workers",
    "/api/workflows",
    "/api/expectations",
    "/api/alerts",
]

WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/api/runs", {"workflow": "w", "run_id": "r-written"}),
    ("POST", "/api/runs/r-auth/signals", {"name": "go"}),
    ("POST", "/api/runs/r-auth/cancel", None),
    ("POST", "/api/runs/r-auth/resume", None),
    ("POST", "/api/tasks/t-1/complete", {"response": {}}),
    ("POST", "/api/events", {"type": "api.written", "id": "e-written"}),
    ("POST", "/api/deadletters/redrive", {"subscription": "s"}),
]
WRITE_IDS = ["start", "signal", "cancel", "resume", "complete", "publish", "redrive"]

ADMIN: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/tokens", None),
    ("POST", "/api/tokens", {"name": "made-by-api", "scope": "read"}),
    ("DELETE", "/api/tokens/api-read", None),
]
ADMIN_IDS = ["list-tokens", "create-token", "revoke-token"]


@pytest.fixture(scope="module", autouse=True)
def pending_run(server: Server) -> str:
    """``r-auth``: a run nobody serves, pending for the module's whole life."""
    made = server.as_scope("operate").post("/api/runs", json={"workflow": "w", "run_id": "r-auth"})
    assert made.status_code == 201, made.text
    return "r-auth"


def state(server: Server) -> dict[str, Any]:
    """What a refused request must leave as it was (read with the admin token). The
    server's tokens of every scope are made first: a test's own token, made when it first
    asks for it, is not a write its request made."""
    for scope in ("read", "operate", "admin"):
        server.token(scope)
    admin = server.as_scope("admin")
    return {
        "runs": admin.get("/api/runs", params={"limit": 1000}).json(),
        "history": admin.get("/api/runs/r-auth/history").json(),
        "events": admin.get("/api/events", params={"limit": 1000}).json(),
        "tokens": admin.get("/api/tokens").json(),
    }


def assert_unauthorized(answer: httpx.Response) -> dict[str, Any]:
    problem = assert_problem(answer, 401, "not-authorized")
    assert answer.headers["www-authenticate"] == "Bearer"
    return problem


# -- no token, a wrong token -------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Bearer lgt_" + "A" * 43},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "lgt_not-even-a-scheme"},
    ],
    ids=["none", "empty-bearer", "garbage", "unknown-lgt", "basic", "no-scheme"],
)
@pytest.mark.parametrize("path", ["/api/runs", "/api/runs/r-auth", "/api/tokens"])
def test_no_valid_token_is_a_401_for_reads(
    server: Server, headers: dict[str, str], path: str
) -> None:
    with httpx.Client(base_url=server.base_url, headers=headers) as anonymous:
        problem = assert_unauthorized(anonymous.get(path))
    assert "token" in problem["detail"]


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_no_token_is_a_401_for_writes_and_writes_nothing(
    server: Server, method: str, path: str, body: Any
) -> None:
    before = state(server)
    with httpx.Client(base_url=server.base_url) as anonymous:
        assert_unauthorized(anonymous.request(method, path, json=body))
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": "Bearer lgt_garbage"}
    ) as wrong:
        assert_unauthorized(wrong.request(method, path, json=body))
    assert state(server) == before


def test_the_probes_need_no_token(server: Server) -> None:
    with httpx.Client(base_url=server.base_url) as anonymous:
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert anonymous.get(path).status_code == 200, path


# -- scopes ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize("scope", ["read", "operate", "admin"])
def test_every_scope_reads(server: Server, scope: str, path: str) -> None:
    answer = server.as_scope(scope).get(path)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_a_read_token_on_a_write_is_a_403_and_writes_nothing(
    server: Server, method: str, path: str, body: Any
) -> None:
    before = state(server)
    answer = server.as_scope("read").request(method, path, json=body)
    problem = assert_problem(answer, 403, "not-permitted")
    assert problem["detail"] == "token 'api-read' has scope read; this needs operate"
    assert state(server) == before


@pytest.mark.parametrize(("method", "path", "body"), ADMIN, ids=ADMIN_IDS)
@pytest.mark.parametrize("scope", ["read", "operate"])
def test_token_routes_need_admin(
    server: Server, scope: str, method: str, path: str, body: Any
) -> None:
    server.token("read")  # exists, so a wrongly allowed revoke would show
    before = state(server)
    answer = server.as_scope(scope).request(method, path, json=body)
    problem = assert_problem(answer, 403, "not-permitted")
    assert problem["detail"].endswith("this needs admin")
    assert state(server) == before


def test_an_operate_token_writes(server: Server, unique: str) -> None:
    operator = server.as_scope("operate")
    started = operator.post("/api/runs", json={"workflow": "w", "run_id": unique})
    assert started.status_code == 201, started.text
    assert operator.post(f"/api/runs/{unique}/signals", json={"name": "go"}).status_code == 202
    published = operator.post("/api/events", json={"type": "api.written", "id": unique})
    assert published.status_code == 201, published.text
    cancelled = operator.post(f"/api/runs/{unique}/cancel")
    assert cancelled.json() == {"run_id": unique, "status": "cancelled"}
    reader = server.as_scope("read")
    assert reader.get(f"/api/runs/{unique}").json()["status"] == "cancelled"
    assert reader.get(f"/api/events/{unique}").status_code == 200


def test_an_admin_token_manages_tokens(server: Server, unique: str) -> None:
    admin = server.as_scope("admin")
    made = admin.post("/api/tokens", json={"name": unique, "scope": "operate"})
    assert made.status_code == 201, made.text
    token = made.json()
    assert token["name"] == unique and token["scope"] == "operate"
    assert token["secret"].startswith("lgt_")
    listed = {t["name"]: t for t in admin.get("/api/tokens").json()}
    assert listed[unique]["revoked_at"] is None
    assert "secret" not in listed[unique]
    assert all("secret" not in t for t in listed.values())

    with server.client(token["secret"]) as fresh:
        assert fresh.post("/api/runs", json={"workflow": "w"}).status_code == 201
        assert_problem(
            admin.post("/api/tokens", json={"name": unique, "scope": "read"}), 409, "token-exists"
        )
        revoked = admin.delete(f"/api/tokens/{unique}")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked_at"] is not None
        assert_unauthorized(fresh.get("/api/runs"))
    assert_problem(admin.delete(f"/api/tokens/{unique}"), 404, "token-not-found")
    assert_problem(admin.delete("/api/tokens/never-made"), 404, "token-not-found")
    for bad in ({"name": ""}, {"name": "has space"}, {"name": "x", "scope": "root"}):
        assert_problem(admin.post("/api/tokens", json=bad), 422, "invalid-request")


def test_a_token_revoked_with_the_cli_is_refused_on_the_next_request(
    server: Server, unique: str
) -> None:
    secret = server.create_token(unique, "operate")
    with server.client(secret) as client:
        assert client.get("/api/runs").status_code == 200
        revoked = server.legato("tokens", "revoke", unique)
        assert revoked.returncode == 0, revoked.stderr
        problem = assert_unauthorized(client.get("/api/runs"))
        assert "revoked" in problem["detail"]
        assert_unauthorized(client.post("/api/runs", json={"workflow": "w", "run_id": unique}))
    assert_problem(server.as_scope("admin").get(f"/api/runs/{unique}"), 404, "run-not-found")


# -- --read-only -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def read_only(server: Server) -> Iterator[Server]:
    """A second server, ``--read-only``, on the first one's database."""
    other = server.sibling("--read-only").start()
    try:
        yield other
    finally:
        other.stop()


@pytest.mark.parametrize(
    ("method", "path", "body"), WRITES + ADMIN[1:], ids=WRITE_IDS + ADMIN_IDS[1:]
)
def test_a_read_only_server_refuses_every_write_even_for_admin(
    server: Server, read_only: Server, method: str, path: str, body: Any
) -> None:
    before = state(server)
    answer = read_only.as_scope("admin").request(method, path, json=body)
    problem = assert_problem(answer, 403, "not-permitted")
    assert "read-only" in problem["detail"]
    assert state(server) == before


@pytest.mark.parametrize("path", READS)
def test_a_read_only_server_reads(read_only: Server, path: str) -> None:
    answer = read_only.as_scope("read").get(path)
    assert answer.status_code == 200, answer.text


def test_a_read_only_server_lists_tokens_to_admin(read_only: Server) -> None:
    answer = read_only.as_scope("admin").get("/api/tokens")
    assert answer.status_code == 200, answer.text
    assert "api-admin" in {t["name"] for t in answer.json()}


def test_a_read_only_server_still_wants_a_token(read_only: Server) -> None:
    with httpx.Client(base_url=read_only.base_url) as anonymous:
        assert_unauthorized(anonymous.get("/api/runs"))


# -- --no-auth ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.com"])
def test_no_auth_off_loopback_refuses_to_start(server: Server, host: str) -> None:
    refused = subprocess.run(
        [
            str(LEGATO),
            "server",
            "--no-auth",
            "--host",
            host,
            "--port",
            str(free_port()),
            "--database",
            server.database,
        ],
        cwd=REPO_ROOT,
        env=cli_env(server.database),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == 2, (refused.returncode, refused.stdout, refused.stderr)
    assert f"refusing to serve {host} with auth off" in refused.stderr
    assert "legato tokens create" in refused.stderr  # and what to do instead
    assert "Traceback" not in refused.stderr


def test_no_auth_on_loopback_serves_without_a_token(server: Server, unique: str) -> None:
    open_server = server.sibling("--no-auth").start()
    try:
        with httpx.Client(base_url=open_server.base_url) as anonymous:
            assert anonymous.get("/api/runs").status_code == 200
            started = anonymous.post("/api/runs", json={"workflow": "w", "run_id": unique})
            assert started.status_code == 201, started.text
            assert anonymous.get(f"/api/runs/{unique}").json()["status"] == "pending"
            assert anonymous.get("/api/tokens").status_code == 200
    finally:
        open_server.stop()
    assert "auth off" in open_server.log.read_text()
