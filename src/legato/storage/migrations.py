"""The migrations shipped with a dialect: numbered SQL files named by purpose."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from legato.storage.base import SCHEMA_VERSION

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


@dataclass(frozen=True, slots=True)
class SchemaState:
    """What a database holds: its schema version (0: none yet) and the migrations this
    Legato would apply to it, by file name."""

    version: int
    pending: list[str]

    @property
    def current(self) -> bool:
        return not self.pending and self.version == SCHEMA_VERSION


def state_of(version: int, package: str) -> SchemaState:
    """The state of a database at ``version`` against the migrations in ``package``."""
    return SchemaState(version, [name for n, name, _ in shipped(package) if n > version])
