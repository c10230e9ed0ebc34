"""The public names of ``legato``: pinned, so modules can move without breaking users."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import legato

EXPECTED_ALL = [
    "Alert",
    "AlertKind",
    "AlertStatus",
    "App",
    "AsyncClient",
    "Client",
    "Delivery",
    "DeliveryInfo",
    "DeliveryStatus",
    "Event",
    "EventKind",
    "ExpectationInstance",
    "ExpectationStatus",
    "HistoryEvent",
    "Ownership",
    "PublishedEvent",
    "Retry",
    "Run",
    "RunDescription",
    "RunHandle",
    "RunStatus",
    "StepSummary",
    "StoredEvent",
    "SubscriptionInfo",
    "SyncRunHandle",
    "Task",
    "TaskStatus",
    "WorkerInfo",
    "child",
    "continue_as_new",
    "delivery",
    "errors",
    "human_task",
    "now",
    "publish",
    "random",
    "records",
    "reply",
    "request",
    "run_id",
    "sleep",
    "sleep_until",
    "step_key",
    "uuid",
    "wait_for_signal",
]

# The operations every surface offers, with the same parameters: App (engine here),
# AsyncClient and Client (engine elsewhere).
OPERATIONS = {
    "start",
    "handle",
    "get_run",
    "describe",
    "describe_runs",
    "history",
    "list_runs",
    "list_workflows",
    "list_workers",
    "cancel",
    "resume",
    "signal",
    "list_tasks",
    "get_task",
    "complete_task",
    "result",
    "publish",
    "publish_event",
    "publish_in_transaction",
    "list_events",
    "get_event",
    "deliveries",
    "list_subscriptions",
    "list_dead_letters",
    "redrive",
    "replay",
    "prune_events",
    "list_expectations",
    "list_alerts",
}

# Synchronous on every surface: a handle is made, not fetched; publish_in_transaction
# runs on the caller's own (blocking) database connection, inside its transaction.
SYNC_EVERYWHERE = {"handle", "publish_in_transaction"}
ASYNC_ONLY = {"publish_in_transaction_async"}
"""Only async code holds a ``psycopg.AsyncConnection``: the blocking client has no use for it."""


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


def test_every_public_exception_is_defined_in_the_errors_module() -> None:
    # A LegatoError subclass defined anywhere else escapes the tree drawn in errors.py.
    root = Path(legato.__file__).parent
    strays = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {ast.unparse(b) for b in node.bases}
                in_tree = any("Error" in b or b in ("OutsideWorkflow", "NotRunning") for b in bases)
                if in_tree and (path.name != "errors.py" or path.parent != root):
                    strays.append(f"{path.relative_to(root)}:{node.name}")
    assert strays == []
    doc = legato.errors.__doc__ or ""
    for name in ("OutsideWorkflow", "NotRunning"):
        assert issubclass(getattr(legato.errors, name), legato.errors.LegatoError)
        assert name in doc


def _public_methods(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_") and callable(getattr(cls, name))}


def test_client_and_async_client_expose_the_same_methods() -> None:
    sync = _public_methods(legato.Client)
    asynchronous = _public_methods(legato.AsyncClient)
    assert sync == asynchronous - ASYNC_ONLY
    assert asynchronous >= ASYNC_ONLY
    assert sync >= OPERATIONS


def test_async_client_methods_are_coroutines_where_client_blocks() -> None:
    for name in _public_methods(legato.AsyncClient) - SYNC_EVERYWHERE - ASYNC_ONLY:
        assert inspect.iscoroutinefunction(getattr(legato.AsyncClient, name)), name
        assert not inspect.iscoroutinefunction(getattr(legato.Client, name)), name


def _shape(fn: object) -> list[tuple[str, object, object]]:
    """Parameter names, kinds and defaults (annotations may differ: App takes functions)."""
    params = list(inspect.signature(fn).parameters.values())[1:]  # drop self
    return [(p.name, p.kind, p.default) for p in params]


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_app_async_client_and_client_take_the_same_parameters(name: str) -> None:
    shapes = {
        cls.__name__: _shape(getattr(cls, name))
        for cls in (legato.App, legato.AsyncClient, legato.Client)
    }
    assert shapes["App"] == shapes["AsyncClient"] == shapes["Client"], shapes


@pytest.mark.parametrize("name", sorted(OPERATIONS - {"start", "handle"}))
def test_app_and_clients_return_the_same_types(name: str) -> None:
    returns = {
        cls.__name__: inspect.signature(getattr(cls, name)).return_annotation
        for cls in (legato.App, legato.AsyncClient, legato.Client)
    }
    assert returns["App"] == returns["AsyncClient"] == returns["Client"], returns


def test_start_returns_a_handle_on_every_surface() -> None:
    for cls, handle in (
        (legato.App, "RunHandle"),
        (legato.AsyncClient, "RunHandle"),
        (legato.Client, "SyncRunHandle"),
    ):
        assert inspect.signature(cls.start).return_annotation == handle, cls
        assert inspect.signature(cls.handle).return_annotation == handle, cls
    assert _public_methods(legato.SyncRunHandle) == _public_methods(legato.RunHandle)


def _imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n == "legato" or n.startswith("legato.")}


def test_client_imports_no_engine_module() -> None:
    # Walk legato.client's own imports, transitively (package __init__ files aside: the
    # front door `legato` imports everything, but the client does not need it).
    root = Path(legato.__file__).parent.parent
    seen: set[str] = set()
    todo = ["legato.client"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        base = root / Path(*module.split("."))
        path = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
        if module != "legato" and path.exists():
            todo.extend(_imports_of(path))
    assert "legato.model.payloads" in seen  # the walk does follow imports
    assert sorted(m for m in seen if m.startswith("legato.engine")) == []


def test_docs_errors_md_draws_the_same_tree_as_the_errors_module() -> None:
    docs = (Path(legato.__file__).parents[2] / "docs" / "errors.md").read_text()
    tree = [line.strip() for line in (legato.errors.__doc__ or "").splitlines() if "──" in line]
    assert tree
    assert [line for line in tree if line not in docs] == []
