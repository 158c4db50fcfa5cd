"""The PostgreSQL driver (psycopg's sync API, imported only when a session is opened): opening
a session, read-only enforcement in PROD, and libpq's messages cut down to one line."""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from simpleaided.domain.errors import (
    BackendUnavailable,
    Conflict,
    InvalidInput,
    ReadOnly,
    SimpleaideError,
)
from simpleaided.domain.vocabulary import DbKind
from simpleaided.store.sql import READ_ONLY_SESSION, TRANSACTION_CONTROL, Lost, QueryResult, Session

if TYPE_CHECKING:
    import psycopg

NOT_INSTALLED = (
    "PostgreSQL support is not installed: install the postgres extra "
    "(pip install '.[postgres]' in simpleaided's source folder)"
)

_READ_ONLY_OPTION = "-c default_transaction_read_only=on"
_SQLSTATE_READ_ONLY = "25006"
_SQLSTATE_SYNTAX = "42601"
_CURSOR = "simpleaide_query"
_SEVERAL_STATEMENTS = "cannot insert multiple commands into a prepared statement"


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


UNREADABLE_URL = (
    "PostgreSQL cannot read this URL: percent-encode / ? @ # % and spaces in the password"
    " (%2F %3F %40 %23 %25 %20)"
)


def unreadable_url(url: str, message: str) -> str:
    """The error for a URL libpq's parser refuses (``message``: its words). Those words quote
    the piece of the URL it stopped at, which may be a piece of a password: unless the URL
    holds none (no ``@`` after the scheme, no ``password`` in it), our own words are told."""
    rest = url.partition("://")[2]
    if "@" in rest or "password" in rest.lower():
        return UNREADABLE_URL
    return f"invalid PostgreSQL URL: {pg_error_line(message)}"


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

    def __init__(
        self, conn: psycopg.Connection[Any], *, read_only: bool, risks: list[str] | None = None
    ) -> None:
        from psycopg.types.string import TextLoader

        self._conn = conn
        self._read_only = read_only
        self._risks = list(risks or [])
        # JSON as the server sends it: parsed, {"a": 10.00} would come back as 10.0.
        for name in ("json", "jsonb"):
            conn.adapters.register_loader(name, TextLoader)
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

    def risks(self) -> list[str]:
        return list(self._risks)

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

    def query(self, sql: str, params: tuple[Any, ...], limit: int) -> QueryResult:
        import psycopg

        try:
            try:
                return self._query_by_cursor(sql, params, limit)
            except (psycopg.errors.SyntaxError, psycopg.errors.FeatureNotSupported) as exc:
                # The DECLARE refused the statement (INSERT, DDL, SET…, a WITH that writes,
                # or a real syntax error): run it plainly, which reports any error in the
                # user's terms. Such a refusal has no context; an error raised while the
                # statement ran (PL/pgSQL's EXECUTE, dblink) has one, and it must not run
                # twice.
                if exc.diag.context is not None:
                    raise
            return self._query_plainly(sql, params, limit)
        except psycopg.Error as exc:
            raise self._failure(exc) from None

    def _query_by_cursor(self, sql: str, params: tuple[Any, ...], limit: int) -> QueryResult:
        """A statement that returns rows, through a server-side cursor: the server sends only
        the rows read (``limit + 1``), never the whole result to the daemon's memory."""
        import psycopg

        self._conn.execute("BEGIN READ ONLY" if self._read_only else "BEGIN")
        committed = False
        cur = self._conn.cursor(name=_CURSOR)
        try:
            cur.execute(sql, params or None)
            rows = cur.fetchmany(limit + 1)
            columns = [(d.name, d.type_display) for d in cur.description or ()]
            if not self._read_only:
                self._conn.execute("COMMIT")  # a SELECT may write (nextval, a function)
                committed = True
        finally:
            if not committed:
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute("ROLLBACK")
            # Closed after the transaction ends: the cursor is gone with it (or with a broken
            # connection), so closing sends nothing and cannot fail half-way, leaving an
            # open cursor for the garbage collector to warn about (a cancelled query).
            with contextlib.suppress(psycopg.Error):
                cur.close()
        return QueryResult(columns, rows[:limit], min(len(rows), limit), len(rows) > limit)

    def _query_plainly(self, sql: str, params: tuple[Any, ...], limit: int) -> QueryResult:
        """Any other statement, alone: pipeline mode sends it by the extended protocol, which
        refuses a second statement. In PROD inside a read-only transaction rolled back after;
        in DEV on its own (autocommit), so VACUUM or CREATE INDEX CONCURRENTLY work."""
        import psycopg
        from psycopg.pq import TransactionStatus

        if self._read_only:
            self._conn.execute("BEGIN READ ONLY")
        try:
            with self._conn.cursor() as cur:
                with self._conn.pipeline():
                    cur.execute(sql, params or None)
                if cur.description is None:
                    rows, count = [], cur.rowcount
                else:
                    rows = cur.fetchmany(limit + 1)
                    count = min(len(rows), limit)
                columns = [(d.name, d.type_display) for d in cur.description or ()]
        finally:
            if self._read_only:
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute("ROLLBACK")
        if self._conn.info.transaction_status != TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                self._conn.execute("ROLLBACK")
            raise InvalidInput(TRANSACTION_CONTROL)
        return QueryResult(columns, rows[:limit], count, len(rows) > limit)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self._read_only:
            raise ReadOnly(READ_ONLY_SESSION)
        import psycopg

        self.execute("BEGIN", ())
        try:
            yield
        except BaseException:
            with contextlib.suppress(psycopg.Error):
                self._conn.execute("ROLLBACK")
            raise
        try:
            self.execute("COMMIT", ())
        except BaseException:
            with contextlib.suppress(psycopg.Error):
                self._conn.execute("ROLLBACK")
            raise

    def budget(self, seconds: float) -> None:
        return None  # statements wait on the network: never run on the caller's loop

    def cancel(self) -> None:
        import psycopg

        # A protocol cancel (a new connection asks the server to stop this backend's
        # statement); the session stays usable.
        with contextlib.suppress(psycopg.Error, OSError):
            self._conn.cancel_safe(timeout=2.0)

    def _failure(self, exc: psycopg.Error) -> SimpleaideError:
        if self._conn.broken or self._conn.closed:
            return Lost(pg_error_line(str(exc)))
        if exc.sqlstate == _SQLSTATE_READ_ONLY:
            return ReadOnly(_first_line(str(exc)))
        message = _first_line(str(exc))
        if message == _SEVERAL_STATEMENTS:
            return InvalidInput("one statement at a time: send the statements one by one")
        if exc.sqlstate and exc.sqlstate.startswith("23"):
            # A constraint: its name is in the message, the row and columns in the detail
            # ("Key (email)=(a@b.c) already exists.", "Failing row contains (…).").
            detail = exc.diag.message_detail
            if detail:
                message = f"{message}: {_first_line(detail)}"
            return Conflict(f"database error: {message}")
        return InvalidInput(f"database error: {message}")

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


# What a role can do that no read-only transaction stops: a superuser or a member of these
# roles writes server files (COPY … TO 'file') or runs programs (COPY … TO PROGRAM), and COPY
# TO is allowed in a read-only transaction. pg_has_role is true of every role for a superuser.
_ROLE_RISKS = """
SELECT current_user, r.rolsuper, r.rolreplication,
       ARRAY(SELECT g.rolname::text FROM pg_catalog.pg_roles g
             WHERE g.rolname IN ('pg_write_server_files', 'pg_execute_server_program')
               AND pg_catalog.pg_has_role(current_user, g.oid, 'MEMBER')
             ORDER BY g.rolname)
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user
"""
_GRANTS = {
    "pg_write_server_files": "it can write files on the database server",
    "pg_execute_server_program": "it can run programs on the database server",
}


def role_risks(conn: psycopg.Connection[Any]) -> list[str]:
    """What the session's role could do beyond reading, in words (``[]``: nothing found)."""
    import psycopg

    try:
        rows = conn.execute(_ROLE_RISKS).fetchall()
    except psycopg.Error as exc:
        return [f"the role's privileges could not be checked: {pg_error_line(str(exc))}"]
    if not rows:
        return []
    role, superuser, replication, grants = rows[0]
    if superuser:
        return [
            f'the role "{role}" is a superuser: it can write files and run programs on the'
            " database server, read-only transactions notwithstanding"
        ]
    risks = [f'the role "{role}" is a member of {g}: {_GRANTS[g]}' for g in grants]
    if replication:
        risks.append(
            f'the role "{role}" has REPLICATION: it can create and move replication slots,'
            " read-only transactions notwithstanding"
        )
    return risks


def open_postgres(
    location: str, password: str | None, *, read_only: bool, timeout: float
) -> PgSession:
    """Connect to PostgreSQL; in PROD every transaction of the session is read-only, and what
    the role could still do beyond reading is checked (``PgSession.risks``)."""
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise BackendUnavailable(NOT_INSTALLED) from None
    try:
        options = conninfo_to_dict(location).get("options")
    except psycopg.Error as exc:
        raise BackendUnavailable(unreadable_url(location, str(exc))) from None
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
        return PgSession(conn, read_only=read_only, risks=role_risks(conn) if read_only else [])
    except BaseException:
        conn.close()
        raise
