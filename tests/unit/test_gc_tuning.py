"""The engine leaves the process's garbage collector alone unless asked."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

import legato


@pytest.fixture
def default_gc() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*saved)


async def test_an_app_leaves_gc_thresholds_alone_by_default(default_gc: None) -> None:
    async with legato.App("t", "memory://"):
        assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


async def test_tune_gc_raises_thresholds_while_running_and_restores_them(
    default_gc: None,
) -> None:
    async with legato.App("t", "memory://", tune_gc=True):
        assert gc.get_threshold() == (50_000, 20, 100)
    assert gc.get_threshold() == (700, 10, 10)


async def test_tune_gc_keeps_thresholds_the_user_chose(default_gc: None) -> None:
    gc.set_threshold(1234, 5, 5)
    async with legato.App("t", "memory://", tune_gc=True):
        assert gc.get_threshold() == (1234, 5, 5)
