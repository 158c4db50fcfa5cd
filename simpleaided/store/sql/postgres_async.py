"""PostgreSQL on the event loop (psycopg's async API), for the grid's page reads only.

A page is a fraction of a millisecond of the server's time; on a worker thread it paid about
as much again for the trip there and back. This session runs the same statements with the
same settings and the same read-only rules as ``postgres.PgSession.execute``. Its caller
never cancels a statement under way (psycopg would then drop the connection without telling
the server, which would go on running it): it stops it on the server with ``cancel`` (a
protocol cancel, from a worker thread), and as a last resort wakes it with ``abort``.
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING, Any

from simpleaided.domain.errors import BackendUnavailable
from simpleaided.domain.vocabulary import DbKind
from simpleaided.store.sql.postgres import (
    connect_params,
    failure,
    keep_json_text,
    pg_error_line,
    quote_identifier,
    wake_socket,
)

if TYPE_CHECKING:
    import psycopg


class AsyncPgSession:
    """A psycopg async connection in autocommit mode, used by one task at a time."""

    kind: DbKind = "postgres"

    def __init__(self, conn: psycopg.AsyncConnection[Any], *, read_only: bool) -> None:
        self._conn = conn
        self._read_only = read_only
        keep_json_text(conn)
        self._wake = wake_socket(conn)

    @property
    def broken(self) -> bool:
        """Whether the connection is gone (then it is closed, never pooled again)."""
        return self._conn.broken or self._conn.closed

    def quote_identifier(self, name: str) -> str:
        return quote_identifier(self._conn, name)

    async def execute(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """One statement and its rows, as ``PgSession.execute`` runs it (see there for PROD)."""
        import psycopg

        try:
            async with self._conn.cursor() as cur:
                if not self._read_only:
                    await cur.execute(sql, params or None)
                    return list(await cur.fetchall()) if cur.description is not None else []
                await cur.execute("BEGIN READ ONLY")
                try:
                    await cur.execute(sql, params or None, prepare=True)
                    return list(await cur.fetchall()) if cur.description is not None else []
                finally:
                    with contextlib.suppress(psycopg.Error):
                        await self._conn.execute("ROLLBACK")
        except psycopg.Error as exc:
            raise failure(exc, broken=self.broken) from None

    def cancel(self) -> None:
        """Ask the server to stop the statement under way (blocking: from a worker thread);
        the session stays usable."""
        import psycopg

        with contextlib.suppress(psycopg.Error, OSError):
            self._conn.cancel()

    def abort(self) -> None:
        """Wake a statement that ignored ``cancel``: the connection is lost."""
        with contextlib.suppress(OSError):
            self._wake.shutdown(socket.SHUT_RDWR)

    async def close(self) -> None:
        try:
            with contextlib.suppress(Exception):
                await self._conn.close()
        finally:
            self._wake.close()


async def open_postgres_async(
    location: str, password: str | None, *, read_only: bool, connect_seconds: float
) -> AsyncPgSession:
    """Connect as ``postgres.open_postgres`` does, with psycopg's async API (its connect
    timeout from ``connect_seconds``, as there)."""
    params = connect_params(location, password, read_only=read_only, timeout=connect_seconds)
    import psycopg

    try:
        conn = await psycopg.AsyncConnection.connect(location, **params)
    except psycopg.Error as exc:
        raise BackendUnavailable(pg_error_line(str(exc))) from None
    return AsyncPgSession(conn, read_only=read_only)
