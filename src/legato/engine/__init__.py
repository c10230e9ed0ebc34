"""Durable execution: replay, steps, retries, sagas, timeouts, recovery.

The engine speaks to storage only through the ``Store`` port and the ``Journal`` (group
commit) built on it.
"""
