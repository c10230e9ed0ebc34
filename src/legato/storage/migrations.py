"""The migrations shipped with a dialect: numbered SQL files named by purpose."""

from __future__ import annotations

import re
from importlib import resources

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def shipped(package: str) -> list[tuple[int, str, str]]:
    """``(version, file name, sql)`` of every migration in ``package``, in order."""
    found = []
    for entry in resources.files(package).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort()
    return found
