"""Numbered SQL migrations, applied in order; the number is the schema version."""
