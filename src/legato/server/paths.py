"""Ids in URL paths, slashes and all: a run id ``orders/2026/7``, its tasks' ids, a flow's
correlation id.

A slash inside an id may be sent as it is (``/api/runs/orders/2026/7``: the run routes
take everything up to their own suffix) or percent-encoded (``orders%2F2026%2F7``). The
server decodes the path before routing, so without help ``/api/runs/a%2Fhistory`` would
be the history of run ``a``, not run ``a/history`` described, and a task of a run with a
slash in its id could not be named at all. ``EncodedSlashes`` keeps an encoded slash
apart (as ``MARK``, a private-use character) until the route's convertor has taken the
id: ``{run_id:run}`` (slashes as they are, like ``path``) and ``{task_id:id}`` (no raw
slash) give it back as ``/``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send

MARK = "\ue000"
"""What an encoded slash is while the path is routed."""

_ENCODED_SLASH = re.compile(rb"%2[fF]")


class IdConvertor(Convertor[str]):
    """One path segment, an encoded slash in it given back as ``/``."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return value.replace(MARK, "/")

    def to_string(self, value: str) -> str:
        return value.replace("/", "%2F")


class RunIdConvertor(IdConvertor):
    """Any number of segments (a run id's slashes may come raw), encoded slashes given
    back as ``/``."""

    regex = ".+"


register_url_convertor("id", IdConvertor())
register_url_convertor("run", RunIdConvertor())


class EncodedSlashes:
    """Route a path whose ids hold encoded slashes with those slashes kept apart."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw: Any = scope.get("raw_path") if scope["type"] == "http" else None
        if raw and _ENCODED_SLASH.search(raw):
            marked = _ENCODED_SLASH.sub(b"%EE%80%80", raw)  # MARK, in UTF-8
            scope = {**scope, "path": unquote(marked.decode("ascii", "replace"))}
        await self.app(scope, receive, send)
