"""``legato db migrate`` and ``legato db status``: a database's schema, for deploys.

A PostgreSQL database is migrated once per deploy, before the new version's workers
start (they refuse a schema that is not current, naming ``legato db migrate``). Two
migrators started at once do not collide: the second waits for the first and finds
nothing left to do. A SQLite file migrates itself when Legato opens it; these commands
work on it too.
"""

from __future__ import annotations

import typer
from rich.table import Table

from legato.cli.options import DatabaseOption, JsonOption, resolve_database
from legato.cli.render import console, print_json, print_table
from legato.storage.admin import database_status, migrate_database

db_app = typer.Typer(help="Migrate a database, or show its schema version.", no_args_is_help=True)


@db_app.command("migrate")
def migrate(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Bring the database to this Legato's schema (creating it if there is none yet)."""
    done = migrate_database(resolve_database(database))
    if as_json:
        print_json(
            {
                "database": done.url,
                "dialect": done.dialect,
                "from_version": done.before,
                "to_version": done.after,
                "applied": done.applied,
            }
        )
        return
    # Plain lines, never wrapped: a deploy log keeps them whole.
    if not done.applied:
        typer.echo(f"{done.url} is at schema {done.after}: nothing to migrate")
        return
    typer.echo(
        f"migrated {done.url} from schema {done.before} to {done.after}: " + ", ".join(done.applied)
    )


@db_app.command("status")
def status(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Show the database's schema version and the migrations it lacks; exit 1 unless
    current (a deploy script can wait on it)."""
    found = database_status(resolve_database(database))
    if as_json:
        print_json(
            {
                "database": found.url,
                "dialect": found.dialect,
                "exists": found.exists,
                "schema": found.schema,
                "version": found.version,
                "supported": found.supported,
                "pending": found.pending,
                "current": found.current,
            }
        )
    else:
        table = Table(show_header=False)
        table.add_column("", style="bold")
        table.add_column("")
        table.add_row("database", found.url)
        table.add_row("dialect", found.dialect)
        if found.schema is not None:
            table.add_row("schema", found.schema)
        table.add_row("version", str(found.version) if found.exists else "no database yet")
        table.add_row("this Legato", str(found.supported))
        table.add_row("pending", ", ".join(found.pending) or "none")
        print_table(table)
        if not found.current:
            console().print("run: legato db migrate" + _database_flag(database))
    if not found.current:
        raise typer.Exit(1)


def _database_flag(database: str | None) -> str:
    return f" --database {database}" if database else ""
