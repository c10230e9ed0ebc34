"""Legato: durable business workflows for Python.

Orchestrate the critical path as a durable workflow (steps, retries, sagas, recovery);
everything else reacts to the facts it publishes.
"""

from legato import errors
from legato.app import App
from legato.client import AsyncClient, Client, RunHandle
from legato.engine.context import now, random, run_id, step_key, uuid
from legato.model import Retry, RunStatus
from legato.model.description import RunDescription

__version__ = "0.1.0"

__all__ = [
    "App",
    "AsyncClient",
    "Client",
    "Retry",
    "RunDescription",
    "RunHandle",
    "RunStatus",
    "errors",
    "now",
    "random",
    "run_id",
    "step_key",
    "uuid",
]
