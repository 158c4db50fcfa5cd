"""The grid benchmark's tables: the same generated rows in a SQLite file and in PostgreSQL,
made once and reused while they are whole (a SQLite ``user_version``, a PostgreSQL table
comment, written last).

``items`` has an integer primary key (``id``), an indexed non-unique column (``grp``, about
100 rows per value), a nullable column (``score``, one NULL in ten) and text (``name``,
``body`` of 20–200 characters), and a timestamp (``created``: text in SQLite, ``timestamptz``
in PostgreSQL). Both are analysed, so the engines' row estimates are there for the grid's
count.
"""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

VERSION = 2  # 2: an index on the nullable score
SEED = 17
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_SCHEMA = "simpleaided_bench"
SQLITE_TABLE = "items"
COLUMNS = ("id", "grp", "score", "name", "body", "created")
_WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
).split()
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def default_cache_dir() -> Path:
    """Where the SQLite files are kept between runs."""
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"simpleaide-bench-{os.getuid()}" / "grid"


def rows(n: int) -> Iterator[tuple[Any, ...]]:
    """The ``n`` rows, the same every time (``created`` as a datetime)."""
    rng = random.Random(SEED)
    groups = max(1, n // 100)
    for i in range(1, n + 1):
        words = rng.randrange(3, 28)
        yield (
            i,
            rng.randrange(groups),
            None if rng.random() < 0.1 else round(rng.random() * 1000, 3),
            f"item-{i:07d}-{rng.getrandbits(32):08x}",
            " ".join(rng.choice(_WORDS) for _ in range(words)),
            _EPOCH + timedelta(seconds=i * 7),
        )


@dataclass(frozen=True)
class Tables:
    """Where the generated table is: the SQLite file and table, the PostgreSQL URL, schema
    and table (``pg_table`` is ``None`` when PostgreSQL is not reachable)."""

    n: int
    sqlite_path: Path
    sqlite_table: str
    pg_url: str
    pg_schema: str
    pg_table: str | None
    pg_error: str | None = None

    @property
    def pg_qualified(self) -> str:
        """``schema.table`` for psql and the floor (both names are plain)."""
        return f"{self.pg_schema}.{self.pg_table}"


def ensure_sqlite(cache_dir: Path, n: int, log: Any) -> Path:
    """The SQLite file of ``n`` rows, generated (into a temporary name, renamed when whole)
    unless a valid one is there."""
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = cache_dir / f"grid-{n}.db"
    if path.exists():
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error:
            version = None
        if version == VERSION:
            return path
        path.unlink()
    log(f"generating {n:,} rows into {path}")
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute(
            f"CREATE TABLE {SQLITE_TABLE} (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, "
            "score REAL, name TEXT NOT NULL, body TEXT, created TEXT NOT NULL)"
        )
        conn.executemany(
            f"INSERT INTO {SQLITE_TABLE} VALUES (?, ?, ?, ?, ?, ?)",
            (
                (i, g, s, name, body, created.isoformat().replace("+00:00", "Z"))
                for i, g, s, name, body, created in rows(n)
            ),
        )
        conn.execute(f"CREATE INDEX {SQLITE_TABLE}_grp ON {SQLITE_TABLE} (grp)")
        conn.execute(f"CREATE INDEX {SQLITE_TABLE}_score ON {SQLITE_TABLE} (score)")
        conn.commit()
        conn.execute("ANALYZE")
        conn.execute(f"PRAGMA user_version = {VERSION}")
        conn.commit()
    finally:
        conn.close()
    os.replace(tmp, path)
    return path


def _pg_comment(n: int) -> str:
    return f"simpleaided grid bench v{VERSION}, {n} rows, complete"


def ensure_postgres(url: str, n: int, log: Any) -> str:
    """The PostgreSQL table of ``n`` rows (``simpleaided_bench.items_<n>``), generated
    unless a whole one is there; returns its name. Raises ``psycopg.Error`` when the server
    is not reachable."""
    import psycopg

    table = f"items_{n}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        found = conn.execute(
            "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c "
            "JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = %s AND c.relname = %s",
            (PG_SCHEMA, table),
        ).fetchone()
        if found is not None and found[0] == _pg_comment(n):
            return table
        log(f"generating {n:,} rows into PostgreSQL {PG_SCHEMA}.{table}")
        with conn.transaction():
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
            conn.execute(f"DROP TABLE IF EXISTS {PG_SCHEMA}.{table}")
            conn.execute(
                f"CREATE TABLE {PG_SCHEMA}.{table} (id bigint PRIMARY KEY, grp integer NOT NULL, "
                "score double precision, name text NOT NULL, body text, "
                "created timestamptz NOT NULL)"
            )
            with conn.cursor().copy(
                f"COPY {PG_SCHEMA}.{table} ({', '.join(COLUMNS)}) FROM STDIN"
            ) as copy:
                for row in rows(n):
                    copy.write_row(row)
            conn.execute(f"CREATE INDEX {table}_grp ON {PG_SCHEMA}.{table} (grp)")
            # A default btree (ASC NULLS LAST): the order NULLs-first the grid shows is read
            # from it in two ranges.
            conn.execute(f"CREATE INDEX {table}_score ON {PG_SCHEMA}.{table} (score)")
            conn.execute(f"COMMENT ON TABLE {PG_SCHEMA}.{table} IS '{_pg_comment(n)}'")
        conn.execute(f"VACUUM (ANALYZE) {PG_SCHEMA}.{table}")  # and the visibility map
    return table


def ensure(cache_dir: Path, n: int, log: Any, *, postgres: bool = True) -> Tables:
    """Both tables of ``n`` rows (PostgreSQL's left out, with the reason, when unreachable)."""
    path = ensure_sqlite(cache_dir, n, log)
    pg_table: str | None = None
    pg_error: str | None = None
    if postgres:
        try:
            import psycopg

            try:
                pg_table = ensure_postgres(PG_URL, n, log)
            except psycopg.Error as exc:
                pg_error = f"PostgreSQL not reachable at {PG_URL}: {str(exc).strip()[:200]}"
        except ImportError:
            pg_error = "psycopg is not installed (pip install -e '.[bench]')"
    else:
        pg_error = "left out (--no-postgres)"
    return Tables(n, path, SQLITE_TABLE, PG_URL, PG_SCHEMA, pg_table, pg_error)
