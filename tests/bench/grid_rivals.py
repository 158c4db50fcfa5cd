"""What the grid is measured against: the bare drivers in this process (the floor, and the
same page by OFFSET), Datasette's JSON API on the same SQLite file, and the engines' own CSV
output (``sqlite3 -csv``, psql's ``\\copy``).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from simpleaided.domain import grid
from tests.bench.grid_data import Tables


def sqlite_quote(name: str) -> str:
    """SQLite's quoting of a name, as the daemon's session does it."""
    return '"' + name.replace('"', '""') + '"'


def pg_quote(name: str) -> str:
    """PostgreSQL's quoting of a plain name (what ``psycopg.sql.Identifier`` gives)."""
    return '"' + name.replace('"', '""') + '"'


class Driver:
    """One engine's bare driver in this process, on the benchmark's table: the floor runs
    the keyset ``SELECT`` through it, and the OFFSET page."""

    dialect: Any = "sqlite"

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def source(self) -> str:
        """The table's quoted name."""
        raise NotImplementedError

    def quote(self, name: str) -> str:
        """A quoted column name."""
        raise NotImplementedError

    def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run ``sql`` with ``params``; all its rows."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection."""
        raise NotImplementedError

    def keyset(
        self, order: Sequence[grid.SortKey], boundary: Sequence[Any] | None, split: bool = True
    ) -> grid.PageQuery:
        """The keyset page after ``boundary`` (100 rows + 1), as :mod:`grid` writes it (its
        ``fetch`` runs its parts as the daemon does; ``split=False``: one statement)."""
        return grid.page_query(
            self.dialect, self.quote, order, boundary=boundary, limit=100, split=split
        )

    def offset(
        self, select: str, order: Sequence[grid.SortKey], depth: int
    ) -> tuple[str, tuple[Any, ...]]:
        """The same page by ``LIMIT 100 OFFSET depth`` (same order, same columns)."""
        place = "?" if self.dialect == "sqlite" else "%s"
        order_by = grid.order_by(self.dialect, self.quote, order)
        sql = (
            f"SELECT {grid.sql_text(self.dialect, select)} FROM {self.source()} "
            f"ORDER BY {order_by} LIMIT {place} OFFSET {place}"
        )
        return sql, (100, depth)

    def explain(self, sql: str, params: Sequence[Any]) -> list[str]:
        """The engine's plan of ``sql``."""
        raise NotImplementedError


class SqliteDriver(Driver):
    """Python's ``sqlite3`` on the benchmark's file."""

    dialect = "sqlite"

    def __init__(self, tables: Tables) -> None:
        super().__init__(tables)
        self.conn = sqlite3.connect(tables.sqlite_path, isolation_level=None)

    def source(self) -> str:
        return f'"main".{sqlite_quote(self.tables.sqlite_table)}'  # as the daemon names it

    def quote(self, name: str) -> str:
        return sqlite_quote(name)

    def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    def explain(self, sql: str, params: Sequence[Any]) -> list[str]:
        rows = self.conn.execute("EXPLAIN QUERY PLAN " + sql, tuple(params)).fetchall()
        return [str(row[-1]) for row in rows]

    def close(self) -> None:
        self.conn.close()


class PostgresDriver(Driver):
    """psycopg on the benchmark's PostgreSQL table (autocommit, its default preparing)."""

    dialect = "postgres"

    def __init__(self, tables: Tables) -> None:
        import psycopg

        super().__init__(tables)
        self.conn = psycopg.connect(tables.pg_url, autocommit=True)

    def source(self) -> str:
        assert self.tables.pg_table is not None
        return f"{pg_quote(self.tables.pg_schema)}.{pg_quote(self.tables.pg_table)}"

    def quote(self, name: str) -> str:
        return pg_quote(name)

    def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    def explain(self, sql: str, params: Sequence[Any]) -> list[str]:
        rows = self.conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS) " + sql,
            tuple(params),
        ).fetchall()
        return [str(row[0]) for row in rows]

    def close(self) -> None:
        self.conn.close()


def free_port() -> int:
    """A TCP port free on the loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Datasette's JSON without the work a grid does not do: no count, no facets, no suggestions.
LEAN = {"_nocount": "1", "_nofacet": "1", "_nosuggest": "1"}


class Datasette:
    """``datasette serve FILE`` in a process of its own, and a keep-alive HTTP client."""

    def __init__(self, path: Path, log_path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.log_file = log_path.open("ab")
        argv = [sys.executable, "-m", "datasette", "serve", str(path)]
        argv += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=self.log_file
        )
        self.conn: http.client.HTTPConnection | None = None
        self.base = f"/{quote(path.stem)}"
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                self.log_file.close()
                tail = log_path.read_text(errors="replace")[-1500:]
                raise RuntimeError(f"datasette exited with {self.proc.returncode}:\n{tail}")
            try:
                status, _ = self.get("/-/versions.json")
                if status == 200:
                    break
            except OSError:
                self._drop()
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("datasette did not answer within 60 s")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        """Datasette's process id."""
        return self.proc.pid

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def get(self, path: str) -> tuple[int, bytes]:
        """One GET on the kept-alive connection: the status and the whole body. A connection
        the server closed while idle (uvicorn's keep-alive lasts 5 s) is opened again."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self.conn.request("GET", path)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._drop()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def page_path(self, table: str, sort: str | None, token: str | None, lean: bool) -> str:
        """The JSON page of 100 rows after ``token`` (Datasette's ``_next``)."""
        query: dict[str, str] = {"_size": "100"}
        if sort:
            query["_sort"] = sort
        if token is not None:
            query["_next"] = token
        if lean:
            query |= LEAN
        return f"{self.base}/{quote(table)}.json?{urlencode(query)}"

    def stop(self) -> None:
        """SIGTERM by pid, then SIGKILL after 10 s."""
        self._drop()
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            self.log_file.close()


def sqlite_csv(tables: Tables, out: Path) -> float:
    """Seconds ``sqlite3 -csv FILE 'SELECT * FROM t' > out`` takes."""
    sql = f"SELECT * FROM {sqlite_quote(tables.sqlite_table)}"
    with out.open("wb") as sink:
        began = time.perf_counter()
        subprocess.run(["sqlite3", "-csv", str(tables.sqlite_path), sql], stdout=sink, check=True)
        return time.perf_counter() - began


def psql_csv(tables: Tables, out: Path) -> float:
    """Seconds psql's ``\\copy t to 'out' csv`` takes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    command = f"\\copy {tables.pg_qualified} to '{out}' csv"
    began = time.perf_counter()
    subprocess.run(
        ["psql", tables.pg_url, "-X", "-q", "-c", command],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - began


def have(program: str) -> bool:
    """Whether ``program`` is on the PATH."""
    with contextlib.suppress(OSError):
        return subprocess.run([program, "--version"], capture_output=True).returncode == 0
    return False
