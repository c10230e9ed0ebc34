"""The web console: ``/console`` on ``legato server`` (docs/console.md)."""

from legato.console.pages import install

__all__ = ["install"]
