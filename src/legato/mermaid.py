"""Text for Mermaid diagrams, escaped once for every chart Legato draws: a flow
(``legato flows show --mermaid``, the console), a workflow's graph (``legato workflows
graph``) and a run's steps (the console)."""

from __future__ import annotations

# Mermaid reads these in a quoted label as markup; its entity codes show them as they are.
_ESCAPES = str.maketrans(
    {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "`": "#96;", "|": "#124;"}
)


def escape(text: str, most: int | None = None) -> str:
    """``text`` as one line of a quoted Mermaid label: whitespace runs as one space, cut
    to ``most`` characters (with ``…``), markup characters as entity codes."""
    line = " ".join(text.split())
    if most is not None and len(line) > most:
        line = line[: most - 1] + "…"
    return line.translate(_ESCAPES)


def quoted(text: str) -> str:
    """``text`` as a whole quoted Mermaid label (see ``escape``)."""
    return f'"{escape(text)}"'
