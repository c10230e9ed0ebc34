"""``legato server``: the HTTP API on a database, served by uvicorn.

Auth is on unless ``--no-auth``, which only a loopback address may use: a server anyone on
the network can reach answers only requests carrying a token (``legato tokens create``).
``--tls-cert``/``--tls-key`` serve HTTPS; ``--read-only`` refuses every write whatever
the token.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from legato.cli.errors import USAGE, fail
from legato.cli.options import DatabaseOption, connect, require_database, resolve_database

DEFAULT_PORT = 8642


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server(
    database: DatabaseOption = None,
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.")] = DEFAULT_PORT,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Take requests without a token (loopback only).")
    ] = False,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Refuse every write, whatever the token.")
    ] = False,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this certificate (PEM).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="The certificate's private key (PEM).")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Server processes sharing the port.")
    ] = 1,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs) on a database."""
    if no_auth and not is_loopback(host):
        raise fail(
            f"refusing to serve {host} with auth off: anyone who reaches it could run and "
            "cancel workflows",
            hint="drop --no-auth and create a token with `legato tokens create NAME --scope "
            "operate`, or listen on 127.0.0.1",
            exit_code=USAGE,
        )
    if (tls_cert is None) != (tls_key is None):
        raise fail(
            "--tls-cert and --tls-key go together",
            hint="give both, or neither for HTTP",
            exit_code=USAGE,
        )
    for option, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key)):
        if path is not None and not path.is_file():
            raise fail(f"{option} {path}: no such file", exit_code=USAGE)
    url = resolve_database(database)
    require_database(url, database)
    with connect(database) as client:
        # A file that is not a Legato database, a server that does not answer: said here,
        # in one line, not in a traceback from each server process starting up.
        client.check_database()

    import os

    import orjson
    import uvicorn

    from legato.server.app import SERVE_ENV

    os.environ[SERVE_ENV] = orjson.dumps(
        {"database": url, "auth": not no_auth, "read_only": read_only}
    ).decode()
    scheme = "https" if tls_cert else "http"
    notes = ["auth off" if no_auth else "auth on", *(["read-only"] if read_only else [])]
    if workers > 1:
        notes.append(f"{workers} processes")
    typer.echo(f"legato server on {scheme}://{host}:{port} ({', '.join(notes)})", err=True)
    uvicorn.run(
        "legato.server.app:from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ssl_certfile=None if tls_cert is None else str(tls_cert),
        ssl_keyfile=None if tls_key is None else str(tls_key),
        log_level="warning",
        access_log=False,
    )
