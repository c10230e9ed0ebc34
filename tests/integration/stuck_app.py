"""A worker app whose sync step never returns: ``legato worker`` must still stop on SIGTERM.

Two step threads only, so two runs fill them.
"""

from __future__ import annotations

import threading

import legato

app = legato.App("stuck", step_threads=2)

_never = threading.Event()


@app.step(name="stuck")
def stuck(order: str) -> None:
    _never.wait()  # nothing sets it: a call into a service that hangs


@app.workflow(name="hang")
async def hang(order: str) -> None:
    await stuck(order)
