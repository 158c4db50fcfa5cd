"""A PostgreSQL schema of a test's own on the machine's server, dropped with all it holds."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def scratch_schema(url: str, prefix: str, *statements: str) -> Iterator[str]:
    """A new schema named ``<prefix>_<random>``, with ``statements`` run in it first (each
    written with ``{schema}`` for its name); dropped afterwards, cascading."""
    import psycopg

    schema = f"{prefix}_{secrets.token_hex(5)}"
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
        try:
            for statement in statements:
                db.execute(statement.format(schema=schema))
            yield schema
        finally:
            db.execute(f"DROP SCHEMA {schema} CASCADE")
