"""The event bus: publishing (the outbox), subscriptions, delivery, and its clients.

``publishing`` routes an event to the subscriptions registered on the database and writes
it with its deliveries in the publisher's transaction; ``consumer`` claims deliveries and
calls handlers (retries, dead letters, FIFO per key, triggers); ``outbox`` publishes in
the caller's own transaction; ``clients`` is the bus half of ``AsyncClient``/``Client``.
Storage is the ``Store`` port's (``legato.storage.base``): the bus adds no port of its own.
"""
