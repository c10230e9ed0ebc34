"""``legato server``: the HTTP API over ``AsyncClient`` (FastAPI on uvicorn).

``create_app(client, settings)`` builds the application; ``legato.cli.server`` serves it.
"""

from legato.server import paths  # noqa: F401  # first: the routes' id convertors
from legato.server.app import create_app
from legato.server.security import ServerSettings

__all__ = ["ServerSettings", "create_app"]
