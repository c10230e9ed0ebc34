"""The PostgreSQL adapter: many workers on many machines share one database."""

from legato.storage.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
