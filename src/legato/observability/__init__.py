"""Hooks the engine calls; logging, metrics, tracing and test faults plug in there."""

from legato.observability.hooks import Hooks

__all__ = ["Hooks"]
