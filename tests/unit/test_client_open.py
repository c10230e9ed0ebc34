"""A client nobody entered opens its store once, however many calls arrive at once."""

from __future__ import annotations

import asyncio

import legato
from legato.storage.memory import MemoryStore


class CountingStore(MemoryStore):
    """A memory store that counts its opens and takes a loop turn to open, as a real
    database does (the window in which a second open could start)."""

    def __init__(self) -> None:
        super().__init__()
        self.opens = 0

    async def open(self) -> None:
        self.opens += 1
        await asyncio.sleep(0.01)
        await super().open()


async def test_concurrent_first_calls_open_the_store_once() -> None:
    store = CountingStore()
    client = legato.AsyncClient(store)
    try:
        results = await asyncio.gather(*(client.list_runs() for _ in range(50)))
    finally:
        await client.close()
    assert results == [[]] * 50
    assert store.opens == 1
