"""What subscriptions received: for tests that publish events and let deliveries run."""

from __future__ import annotations

from typing import Any

from legato.model.deliveries import DeliveryStatus
from legato.model.events import Event


async def received(app: Any, subscription: Any, *, status: str = "done") -> list[Event]:
    """The events ``subscription`` handled (``status="done"``), in log order; or those in
    another delivery status (``"dead"``: its dead letters, ``"pending"``: still to go).

    ``subscription`` is its name, or (with an ``App``) the handler function itself.
    ``app`` is a ``legato.App`` or an ``AsyncClient``. With ``FakeClock.settle()`` first,
    a test reads what each subscriber got without sleeping::

        await app.publish("order.placed", {"id": 7})
        await clock.settle()
        assert [e.data for e in await received(app, send_receipt)] == [{"id": 7}]
    """
    DeliveryStatus(status)  # a clear ValueError for a status that does not exist
    if callable(subscription):
        names = [s.name for s in app.registry.subscriptions.values() if s.handler is subscription]
        if not names:
            raise ValueError(f"{subscription!r} is not an @app.on handler of this app")
        subscription = names[0]
    store = app.store if hasattr(app, "registry") else app._store
    deliveries = await store.list_deliveries(
        status=status, subscription=subscription, limit=1_000_000
    )
    events = []
    for delivery in deliveries:
        stored = await store.get_event(delivery.seq)
        if stored is not None:
            events.append(stored.event)
    return events
