"""Identifier types."""

from typing import NewType

RunId = NewType("RunId", str)
"""A run's id: chosen by the caller (``purchase-p-1``) or generated (a UUID)."""

WorkerId = NewType("WorkerId", str)
"""A worker process's id, unique per process start."""
