"""Find the ``legato.App`` a command line names: ``MODULE[:APP]`` or ``path/to/file.py[:APP]``.

Shared by the commands that load a user's app in this process (``legato worker``,
``legato workflows graph``). The current directory is on the import path. Whatever goes
wrong while finding the app (no such module or file, the module raises while it is
imported, no such attribute, not an ``App``) is one line and a hint, never a traceback:
the traceback belongs to ``python path/to/file.py``.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import typer

from legato.app import App
from legato.cli.errors import USAGE, fail

WORKER_USAGE = "legato worker {target}"
"""How a hint writes the corrected command line: ``{target}`` stands for MODULE:APP."""


def _is_path(module_part: str) -> bool:
    return module_part.endswith(".py") or "/" in module_part or os.sep in module_part


def _where(exc: BaseException) -> str:
    """``(file, line N)`` of the frame that raised, preferring the user's own files."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" ({exc.filename}, line {exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    cwd = os.getcwd()
    own = [f for f in frames if f.filename.startswith(cwd) and "site-packages" not in f.filename]
    if not frames:
        return ""
    frame = (own or frames)[-1]
    return f" ({frame.filename}, line {frame.lineno})"


def _import_failed(label: str, exc: Exception, rerun: str) -> typer.Exit:
    text = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    message = text.splitlines()[0] if text else ""
    what = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return fail(
        f"importing {label} raised {what}{_where(exc)}",
        hint=f"fix the module; `{rerun}` shows the whole traceback",
    )


def _package_root(path: Path) -> tuple[Path, str]:
    """The directory to put on the import path for ``path``, and its dotted module name.

    A file inside a package (directories with ``__init__.py``) is imported as part of it,
    so its relative imports work.
    """
    parts = [path.stem]
    directory = path.parent
    while (directory / "__init__.py").is_file() and directory.parent != directory:
        parts.insert(0, directory.name)
        directory = directory.parent
    return directory, ".".join(parts)


def _import_file(text: str, usage: str) -> tuple[ModuleType, str]:
    path = Path(text)
    if not path.is_file():
        raise fail(
            f"cannot import {text!r}: there is no such file",
            hint="give the path of a .py file (relative to the current directory), "
            f"or a module name: `{usage.format(target='courses:app')}`",
            exit_code=USAGE,
        )
    if path.suffix != ".py":
        raise fail(
            f"cannot import {text!r}: not a .py file", hint="give a Python file", exit_code=USAGE
        )
    path = path.resolve()
    root, name = _package_root(path)
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        raise _import_failed(repr(text), exc, f"python {text}") from None
    loaded = getattr(module, "__file__", None)
    if loaded is None or Path(loaded).resolve() != path:
        raise fail(
            f"cannot import {text!r} as module {name!r}: another module of that name is "
            f"loaded already ({loaded or 'built in'})",
            hint="rename the file, or give it as MODULE:APP",
            exit_code=USAGE,
        )
    return module, name


def _import_module(name: str, usage: str) -> ModuleType:
    sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            raise fail(
                f"cannot import {name!r}: no module of that name in {os.getcwd()} or on "
                "the import path",
                hint="run from the directory that holds it, or give its file: "
                f"`{usage.format(target='path/to/courses.py:app')}`",
                exit_code=USAGE,
            ) from None
        raise _import_failed(repr(name), exc, f"python -c 'import {name}'") from None
    except Exception as exc:
        raise _import_failed(repr(name), exc, f"python -c 'import {name}'") from None


def _apps_in(module: ModuleType) -> list[str]:
    return sorted(name for name, value in vars(module).items() if isinstance(value, App))


def load_app(target: str, usage: str = WORKER_USAGE) -> App:
    """The ``legato.App`` that ``target`` (``MODULE[:APP]`` or ``file.py[:APP]``) names.

    Raises ``typer.Exit`` after printing one line and a hint when it cannot. The hints
    show corrected command lines as ``usage`` spells them (``{target}``: the MODULE:APP),
    so each command suggests itself.
    """
    module_part, _, attr = target.partition(":")
    if not module_part:
        raise fail(
            f"expected MODULE:APP or path/to/file.py:APP, got {target!r}",
            hint=f"for example `{usage.format(target='courses:app')}`",
            exit_code=USAGE,
        )
    if _is_path(module_part):
        module, name = _import_file(module_part, usage)
    else:
        module, name = _import_module(module_part, usage), module_part
    apps = _apps_in(module)
    found = ", ".join(apps) or "none"
    if not attr:
        if len(apps) == 1:
            return getattr(module, apps[0])  # type: ignore[no-any-return]  # checked above
        raise fail(
            f"module {name!r} holds several legato.App objects ({found}); name one"
            if apps
            else f"module {name!r} holds no legato.App",
            hint=f"name one: `{usage.format(target=f'{module_part}:{apps[0]}')}`"
            if apps
            else "create one in the module (app = legato.App(...)) and write MODULE:APP",
            exit_code=USAGE,
        )
    if not hasattr(module, attr):
        raise fail(
            f"module {name!r} has no attribute {attr!r}; its legato.App objects: {found}",
            hint=f"write `{usage.format(target=f'{module_part}:{apps[0]}')}`"
            if apps
            else "write MODULE:APP, where APP is the legato.App the module creates",
            exit_code=USAGE,
        )
    app = getattr(module, attr)
    if not isinstance(app, App):
        raise fail(
            f"{target!r} is not a legato.App: it is a {type(app).__name__}",
            hint=f"write `{usage.format(target=f'{module_part}:{apps[0]}')}`"
            if apps
            else "point at the object made by legato.App(...)",
            exit_code=USAGE,
        )
    return app


@contextmanager
def environment(name: str, value: str | None) -> Iterator[None]:
    """Set ``$name`` to ``value`` (when given) for the duration, then restore it."""
    if value is None:
        yield
        return
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved
