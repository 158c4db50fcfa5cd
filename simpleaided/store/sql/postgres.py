"""The PostgreSQL driver (psycopg's sync API, imported only when a session is opened): opening
a session, read-only enforcement in PROD, and libpq's messages cut down to one line."""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import time
from typing import TYPE_CHECKING, Any

from simpleaided.domain.errors import BackendUnavailable, InvalidInput, ReadOnly, SimpleaideError
from simpleaided.domain.vocabulary import DbKind
from simpleaided.store.sql import Lost, Session

if TYPE_CHECKING:
    import psycopg

NOT_INSTALLED = "PostgreSQL support is not installed: pip install 'simpleaided[postgres]'"

_READ_ONLY_OPTION = "-c default_transaction_read_only=on"
_SQLSTATE_READ_ONLY = "25006"


def _lower_first(text: str) -> str:
    # "Connection refused" → "connection refused", but "FATAL" or "SSL" stay as they are.
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


_SERVER_FAILED = re.compile(
    r'connection to server (?:at "([^"]*)"(?: \([^)]*\))?, port ([0-9]+)|on socket "([^"]*)")'
    r" failed: (.*)"
)
_LIBPQ_PREFIXES = (
    "connection failed:",
    "consuming input failed:",
    "sending query failed:",
    "sending query and params failed:",
    "FATAL:",
    "ERROR:",
)


def pg_error_line(message: str) -> str:
    """One short line from a libpq or psycopg message: the server's own words, or the network
    error and where (``connection refused (127.0.0.1:5999)``)."""
    match = _SERVER_FAILED.search(message)
    if match:
        host, port, sock, detail = match.groups()
        detail = detail.strip()
        if detail.startswith("FATAL:"):
            return _lower_first(detail.removeprefix("FATAL:").strip())
        where = f"{host}:{port}" if host is not None else sock
        return f"{_lower_first(detail)} ({where})"
    line = message.strip().split("\n", 1)[0].strip()
    stripped = True
    while stripped:
        stripped = False
        for prefix in _LIBPQ_PREFIXES:
            if line.startswith(prefix):
                line = line.removeprefix(prefix).strip()
                stripped = True
    return _lower_first(line) or "unknown database error"


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


class PgSession(Session):
    """A psycopg connection in autocommit mode, with a handle to wake it."""

    kind: DbKind = "postgres"

    def __init__(self, conn: psycopg.Connection[Any], *, read_only: bool) -> None:
        self._conn = conn
        self._read_only = read_only
        # Our own descriptor of the connection's socket: shutting it down wakes a thread
        # waiting on a silent server, and unlike libpq's descriptor (closed when libpq drops
        # the connection) its number cannot be reused for another file under us.
        fd = os.dup(conn.pgconn.socket)
        try:
            self._wake = socket.socket(fileno=fd)
        except BaseException:
            os.close(fd)
            raise

    def check(self) -> tuple[float, bool]:
        import psycopg

        try:
            start = time.perf_counter()
            self._conn.execute("SELECT 1").fetchall()
            latency = (time.perf_counter() - start) * 1000
            row = self._conn.execute("SHOW transaction_read_only").fetchone()
        except psycopg.Error as exc:
            # A session that fails ``SELECT 1`` is not trusted: dropped, and connected anew.
            raise Lost(pg_error_line(str(exc))) from None
        return latency, row is not None and row[0] == "on"

    def execute(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            with self._conn.cursor() as cur:
                if not self._read_only:
                    # No parameters: sent as it is (a "%" in it is no placeholder).
                    cur.execute(sql, params or None)
                    return list(cur.fetchall()) if cur.description is not None else []
                # PROD. The session default alone could be turned off by the statement itself
                # ("SET default_transaction_read_only = off", "BEGIN READ WRITE; ..."). So:
                # exactly one statement (prepared: the extended protocol refuses several), in
                # a read-only transaction that is then rolled back, taking with it any setting
                # the statement changed (SET is transactional in PostgreSQL).
                cur.execute("BEGIN READ ONLY")
                try:
                    cur.execute(sql, params or None, prepare=True)
                    return list(cur.fetchall()) if cur.description is not None else []
                finally:
                    with contextlib.suppress(psycopg.Error):
                        self._conn.execute("ROLLBACK")
        except psycopg.Error as exc:
            raise self._failure(exc) from None

    def _failure(self, exc: psycopg.Error) -> SimpleaideError:
        if self._conn.broken or self._conn.closed:
            return Lost(pg_error_line(str(exc)))
        if exc.sqlstate == _SQLSTATE_READ_ONLY:
            return ReadOnly(_first_line(str(exc)))
        return InvalidInput(f"database error: {_first_line(str(exc))}")

    def quote_identifier(self, name: str) -> str:
        import psycopg
        from psycopg import sql

        if "\0" in name:
            raise InvalidInput("an SQL name cannot contain a NUL character")
        try:
            # Rendered by libpq for the connection's encoding.
            return sql.Identifier(name).as_string(self._conn)
        except psycopg.Error as exc:
            raise self._failure(exc) from None

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._wake.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        try:
            with contextlib.suppress(Exception):
                self._conn.close()
        finally:
            self._wake.close()


def open_postgres(
    location: str, password: str | None, *, read_only: bool, timeout: float
) -> PgSession:
    """Connect to PostgreSQL; in PROD every transaction of the session is read-only."""
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise BackendUnavailable(NOT_INSTALLED) from None
    try:
        options = conninfo_to_dict(location).get("options")
    except psycopg.Error as exc:
        raise BackendUnavailable(f"invalid PostgreSQL URL: {pg_error_line(str(exc))}") from None
    params: dict[str, Any] = {
        "autocommit": True,
        # psycopg enforces it (at least 2 s); abandoned connects end by it.
        "connect_timeout": max(2, math.ceil(timeout)),
        "fallback_application_name": "simpleaided",
    }
    if password is not None:
        params["password"] = password
    if read_only:
        params["options"] = f"{options} {_READ_ONLY_OPTION}" if options else _READ_ONLY_OPTION
    try:
        conn = psycopg.connect(location, **params)
    except psycopg.Error as exc:
        raise BackendUnavailable(pg_error_line(str(exc))) from None
    try:
        return PgSession(conn, read_only=read_only)
    except BaseException:
        conn.close()
        raise
