"""The public names of ``legato``: pinned, so modules can move without breaking users."""

from __future__ import annotations

import inspect

import legato

EXPECTED_ALL = [
    "App",
    "AsyncClient",
    "Client",
    "Retry",
    "RunDescription",
    "RunHandle",
    "RunStatus",
    "Task",
    "TaskStatus",
    "child",
    "errors",
    "human_task",
    "now",
    "random",
    "run_id",
    "sleep",
    "sleep_until",
    "step_key",
    "uuid",
    "wait_for_signal",
]


def test_all_is_pinned() -> None:
    assert sorted(legato.__all__) == sorted(EXPECTED_ALL)
    assert len(legato.__all__) == len(set(legato.__all__))


def test_every_exported_name_exists() -> None:
    missing = [name for name in legato.__all__ if not hasattr(legato, name)]
    assert missing == []


def test_error_tree_has_one_root() -> None:
    errors = [
        obj
        for _, obj in inspect.getmembers(legato.errors, inspect.isclass)
        if obj.__module__ == "legato.errors" and issubclass(obj, Exception)
    ]
    assert errors
    assert all(issubclass(e, legato.errors.LegatoError) for e in errors)


def _public_methods(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_") and callable(getattr(cls, name))}


def test_client_and_async_client_expose_the_same_methods() -> None:
    sync = _public_methods(legato.Client)
    asynchronous = _public_methods(legato.AsyncClient)
    assert sync == asynchronous
    assert {"start", "cancel", "describe", "history", "list_runs", "result"} <= sync


def test_async_client_methods_are_coroutines_where_client_blocks() -> None:
    for name in _public_methods(legato.AsyncClient) - {"handle"}:
        assert inspect.iscoroutinefunction(getattr(legato.AsyncClient, name)), name
        assert not inspect.iscoroutinefunction(getattr(legato.Client, name)), name
